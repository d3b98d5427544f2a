"""The services the chat surface calls, built once by the composition root (`bot.app`).

Each capability receives the shared layers it uses (`Layers.given`) and the peers it calls through
its constructor; this is the one place that knows how they fit together, so a test (the fast tier's
recording messenger, say) builds the same graph the running bot does.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.actions.actions import Actions
from bot.activations.activation import Activations
from bot.activations.digest import Digest
from bot.activations.lifecycle import Lifecycle
from bot.activations.logbook import Logbook
from bot.activations.situation import Situation, read_situation
from bot.chat.registry import Registry
from bot.directory.lookup import Lookup
from bot.directory.model import Directory
from bot.directory.outsiders import Outsiders
from bot.inputs.requests import Inputs
from bot.paging.answers import Answers
from bot.paging.board import Board
from bot.paging.commchecks import CommChecks
from bot.paging.escalation import Escalation
from bot.paging.seen import Seen
from bot.paging.send import Pager
from bot.playbooks.apply import Playbooks
from bot.reach.direct import DirectMessages
from bot.reach.email import Mailer
from bot.reach.fallback import Fallback
from bot.reach.links import AckLinks
from bot.reach.replies import MailReplies
from bot.reach.servers import Servers
from bot.reach.sms import SmsGateway, SmsReplies
from bot.review.review import Reviews
from bot.rota.duty import Duty
from bot.rounds.runs import Rounds
from bot.runtime.layers import Layers
from bot.situation_board.boards import Boards
from bot.storage.models import ActivationRow, TimerKind


@dataclass(frozen=True, kw_only=True)
class Services(Layers):
    registry: Registry
    activations: Activations
    lifecycle: Lifecycle
    logbook: Logbook
    direct: DirectMessages
    board: Board
    pager: Pager
    answers: Answers
    seen: Seen
    escalation: Escalation
    commchecks: CommChecks
    inputs: Inputs
    actions: Actions
    playbooks: Playbooks
    rounds: Rounds
    digest: Digest
    outsiders: Outsiders
    lookup: Lookup
    duty: Duty
    fallback: Fallback
    servers: Servers
    links: AckLinks
    mail_replies: MailReplies
    sms_replies: SmsReplies
    reviews: Reviews
    boards: Boards

    @property
    def directory(self) -> Directory:
        """The directory in force now; a reload swaps it whole, so read it once per use."""
        return self.keeper.current

    async def situation(self, activation: ActivationRow) -> Situation:
        """Where `activation` stands, as `status` and `handover` tell it."""
        return await read_situation(
            activation,
            db=self.db,
            inputs=self.inputs,
            rounds=self.rounds,
            directory=self.keeper.current,
            zone=self.settings.timezone,
        )


def register_timers(services: Services) -> None:
    """Each kind of durable timer to the capability that handles it."""
    scheduler = services.scheduler
    scheduler.on_batch(TimerKind.PAGE_STEP, services.escalation.on_steps)
    scheduler.on(TimerKind.REQUEST_STEP, services.inputs.on_step)
    scheduler.on(TimerKind.CHECK_CLOSE, services.commchecks.on_close)
    scheduler.on(TimerKind.DG_DIGEST, services.digest.on_digest)
    scheduler.on(TimerKind.ROUND_RUN, services.rounds.on_run)
    scheduler.on(TimerKind.ROUND_REMIND, services.rounds.on_remind)
    scheduler.on(TimerKind.ROUND_CLOSE, services.rounds.on_close)
    scheduler.on(TimerKind.SHIFT_CHANGE, services.duty.on_shift)
    scheduler.on_batch(TimerKind.PAGE_FALLBACK, services.fallback.on_steps)
    scheduler.on(TimerKind.ACTION_STEP, services.actions.on_step)
    scheduler.on(TimerKind.REVIEW_REPOST, services.reviews.on_repost)
    scheduler.on_batch(TimerKind.FEEDBACK_ASK, services.reviews.on_asks)


def build_services(layers: Layers, registry: Registry) -> Services:
    """Every capability on the one set of layers, each given the peers it calls."""
    given = layers.given
    settings = layers.settings
    mailer = Mailer(settings.smtp_url, settings.mail_from)
    sms = SmsGateway(settings.sms_url, settings.sms_token, layers.renderer)
    activations = Activations(**given(Activations))
    direct = DirectMessages(**given(DirectMessages))
    board = Board(**given(Board), activations=activations)
    fallback = Fallback(
        **given(Fallback), activations=activations, board=board, mailer=mailer, sms=sms
    )
    servers = Servers(**given(Servers), activations=activations, board=board, fallback=fallback)
    pager = Pager(
        **given(Pager),
        board=board,
        activations=activations,
        direct=direct,
        fallback=fallback,
        servers=servers,
    )
    commchecks = CommChecks(**given(CommChecks), activations=activations, pager=pager)
    inputs = Inputs(**given(Inputs), activations=activations, direct=direct)
    rounds = Rounds(**given(Rounds), activations=activations, pager=pager, commchecks=commchecks)
    answers = Answers(**given(Answers), activations=activations, board=board)
    duty = Duty(**given(Duty), activations=activations, direct=direct, inputs=inputs, rounds=rounds)
    actions = Actions(**given(Actions), activations=activations, direct=direct)
    reviews = Reviews(**given(Reviews), activations=activations, direct=direct)
    return Services(
        **layers.given(Services),
        registry=registry,
        activations=activations,
        lifecycle=Lifecycle(
            **given(Lifecycle), activations=activations, rounds=rounds, reviews=reviews
        ),
        logbook=Logbook(**given(Logbook), activations=activations, inputs=inputs),
        direct=direct,
        board=board,
        pager=pager,
        answers=answers,
        seen=Seen(**given(Seen), board=board),
        escalation=Escalation(
            **given(Escalation),
            activations=activations,
            board=board,
            pager=pager,
            duty=duty,
            servers=servers,
        ),
        commchecks=commchecks,
        inputs=inputs,
        actions=actions,
        playbooks=Playbooks(
            **given(Playbooks),
            activations=activations,
            actions=actions,
            pager=pager,
            rounds=rounds,
            duty=duty,
        ),
        rounds=rounds,
        digest=Digest(**given(Digest), activations=activations, inputs=inputs),
        outsiders=Outsiders(**given(Outsiders), activations=activations, direct=direct),
        lookup=Lookup(**given(Lookup)),
        duty=duty,
        fallback=fallback,
        servers=servers,
        links=AckLinks(**given(AckLinks), answers=answers),
        mail_replies=MailReplies(**given(MailReplies), answers=answers),
        sms_replies=SmsReplies(**given(SmsReplies), answers=answers),
        reviews=reviews,
        boards=Boards(**given(Boards), activations=activations, direct=direct),
    )
