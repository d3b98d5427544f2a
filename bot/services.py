"""The services the chat surface calls, built once by the composition root (`bot.app`).

Each capability receives only the parts it uses, through its constructor; this is the one place
that knows how they fit together, so a test (the fast tier's recording messenger, say) builds the
same graph the running bot does.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.activations.activation import Activations
from bot.activations.digest import Digest
from bot.activations.lifecycle import Lifecycle
from bot.activations.logbook import Logbook
from bot.activations.situation import Situation, read_situation
from bot.chat.registry import Registry
from bot.directory.keeper import DirectoryKeeper
from bot.directory.lookup import Lookup
from bot.directory.model import Directory
from bot.directory.outsiders import Outsiders
from bot.inputs.requests import Inputs
from bot.matrix.send import Messenger
from bot.paging.answers import Answers
from bot.paging.board import Board
from bot.paging.commchecks import CommChecks
from bot.paging.escalation import Escalation
from bot.paging.send import Pager
from bot.reach.direct import DirectMessages
from bot.render import Renderer
from bot.rounds.runs import Rounds
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import Scheduler
from bot.runtime.tasks import KeyedLocks
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.models import ActivationRow, TimerKind


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    registry: Registry
    messenger: Messenger
    scheduler: Scheduler
    metrics: Metrics
    activations: Activations
    lifecycle: Lifecycle
    logbook: Logbook
    direct: DirectMessages
    board: Board
    pager: Pager
    answers: Answers
    escalation: Escalation
    commchecks: CommChecks
    inputs: Inputs
    rounds: Rounds
    digest: Digest
    outsiders: Outsiders
    lookup: Lookup

    @property
    def directory(self) -> Directory:
        """The directory in force now; a reload swaps it whole, so read it once per use."""
        return self.keeper.current

    async def situation(self, activation: ActivationRow) -> Situation:
        """Where `activation` stands, as `status` and `handover` tell it."""
        return await read_situation(activation, db=self.db, inputs=self.inputs, rounds=self.rounds)


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


def build_services(
    *,
    settings: Settings,
    db: Database,
    keeper: DirectoryKeeper,
    renderer: Renderer,
    registry: Registry,
    messenger: Messenger,
    scheduler: Scheduler,
    metrics: Metrics,
) -> Services:
    """Every capability, each given what it uses; one lock table shared by all of them."""
    locks = KeyedLocks()
    activations = Activations(
        settings=settings, db=db, keeper=keeper, messenger=messenger, scheduler=scheduler
    )
    direct = DirectMessages(
        settings=settings, keeper=keeper, locks=locks, db=db, renderer=renderer, messenger=messenger
    )
    board = Board(
        locks=locks, activations=activations, db=db, renderer=renderer, messenger=messenger
    )
    pager = Pager(
        keeper=keeper,
        scheduler=scheduler,
        board=board,
        metrics=metrics,
        activations=activations,
        direct=direct,
        db=db,
        renderer=renderer,
        messenger=messenger,
    )
    answers = Answers(
        scheduler=scheduler,
        metrics=metrics,
        activations=activations,
        board=board,
        db=db,
        renderer=renderer,
    )
    escalation = Escalation(
        keeper=keeper,
        scheduler=scheduler,
        metrics=metrics,
        activations=activations,
        board=board,
        pager=pager,
        db=db,
        renderer=renderer,
    )
    commchecks = CommChecks(
        keeper=keeper,
        scheduler=scheduler,
        activations=activations,
        pager=pager,
        db=db,
        renderer=renderer,
        messenger=messenger,
    )
    inputs = Inputs(
        keeper=keeper,
        scheduler=scheduler,
        activations=activations,
        direct=direct,
        db=db,
        renderer=renderer,
        messenger=messenger,
    )
    rounds = Rounds(
        settings=settings,
        keeper=keeper,
        scheduler=scheduler,
        activations=activations,
        pager=pager,
        commchecks=commchecks,
        db=db,
        renderer=renderer,
        messenger=messenger,
    )
    lifecycle = Lifecycle(
        settings=settings,
        db=db,
        keeper=keeper,
        renderer=renderer,
        messenger=messenger,
        scheduler=scheduler,
        activations=activations,
        rounds=rounds,
    )
    logbook = Logbook(
        settings=settings,
        db=db,
        renderer=renderer,
        messenger=messenger,
        activations=activations,
        inputs=inputs,
    )
    digest = Digest(
        settings=settings,
        keeper=keeper,
        scheduler=scheduler,
        activations=activations,
        inputs=inputs,
        db=db,
        renderer=renderer,
        messenger=messenger,
    )
    outsiders = Outsiders(
        keeper=keeper,
        activations=activations,
        direct=direct,
        db=db,
        renderer=renderer,
        messenger=messenger,
    )
    return Services(
        settings=settings,
        db=db,
        keeper=keeper,
        renderer=renderer,
        registry=registry,
        messenger=messenger,
        scheduler=scheduler,
        metrics=metrics,
        activations=activations,
        lifecycle=lifecycle,
        logbook=logbook,
        direct=direct,
        board=board,
        pager=pager,
        answers=answers,
        escalation=escalation,
        commchecks=commchecks,
        inputs=inputs,
        rounds=rounds,
        digest=digest,
        outsiders=outsiders,
        lookup=Lookup(settings=settings, db=db, keeper=keeper, renderer=renderer),
    )
