"""SMS through the operator's gateway: out by its HTTP API, in as its signed deliveries.

**Out.** `POST ICC_SMS_URL` with `Authorization: Bearer ICC_SMS_TOKEN` and the body the template
`sms_request.txt.j2` makes (operators override it in `ICC_CONFIG_DIR/templates/`, so any gateway
fits): a body that opens with `{` or `[` is sent as JSON and must be JSON; anything else is sent
as a form (`application/x-www-form-urlencoded`). The template is given `to` (E.164), `text` and
`reference` (stable for a page to a person; it is also sent as the `Idempotency-Key` header, so a
gateway that knows it never sends a retried request twice). A 2xx answer is a send: its message
ID is the top-level `id` of a JSON answer, else `HTTP <status>`. Anything else (a network error,
a timeout, a non-2xx answer) raises `SmsError` with the reason, which the fallback records and
retries like every channel.

**In.** The gateway (or a small adapter in front of it) delivers each SMS to
`POST ICC_PUBLIC_URL/sms/inbound` as JSON `{"from": "+32475123456", "text": "ACK 12"}` (and
`"id"`, the gateway's ID for it, when it has one), signed: `X-ICC-Signature` is the hex
HMAC-SHA256 of the raw body under `ICC_SMS_SECRET`. An SMS from a contact's number (`phone` in the
directory in force) that opens with an acknowledgement word (`ACK`, `reçu`, `ontvangen`… as in
Matrix, `bot.paging.acks`), then optionally the page's number (`12`, `PG-12`), acknowledges that
page for that person; without a number, their newest open page. Anything else changes nothing.

The logs name who sent an SMS when the directory knows the number, else only its last three
digits, and never its text: a reply may quote a TLP:RED page or carry what the cell would not
put in a log, and a full number is personal data the logs do not need to match a gateway's
record of the delivery.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from jinja2 import TemplateError

from bot.errors import UserError
from bot.paging.acks import read_ack
from bot.reach.channel import ChannelError
from bot.runtime.metrics import OFF, TEMPLATE, UNREACHABLE
from bot.storage import page_store as store
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.directory.model import Contact
    from bot.paging.answers import Answers
    from bot.render import Renderer
    from bot.settings import Settings
    from bot.storage.db import Database

log = logging.getLogger(__name__)

REQUEST_TEMPLATE = "sms_request"
SEND_TIMEOUT = 30.0  # seconds for one request, connection included
SIGNATURE_HEADER = "X-ICC-Signature"
MESSAGE_ID_FIELD = "id"  # of the gateway's JSON answer to a send
MAX_BODY = 16 * 1024  # bytes of an inbound delivery: one SMS, even in several parts, is far less
REASON_CHARS = 160  # of a gateway's error answer kept in the record


class SmsError(ChannelError):
    """The gateway could not be reached, or refused the message."""


class SmsGateway:
    """Sends through one gateway's HTTP API; `None` URL: SMS is off."""

    def __init__(self, url: str | None, token: str | None, renderer: Renderer) -> None:
        self.url, self._token, self._renderer = url, token or "", renderer

    def request(self, *, to: str, text: str, reference: str) -> tuple[str, str]:
        """The request's body, from the operator's template, and its content type."""
        try:
            body = self._renderer.text(REQUEST_TEMPLATE, to=to, text=text, reference=reference)
        except TemplateError as exc:  # an operator's override that does not render
            raise SmsError(
                f"the {REQUEST_TEMPLATE} template fails: {exc}", retry=False, kind=TEMPLATE
            ) from None
        if body[:1] not in ("{", "["):
            return body, "application/x-www-form-urlencoded"
        try:
            json.loads(body)
        except ValueError as exc:
            raise SmsError(
                f"the {REQUEST_TEMPLATE} template does not make JSON ({exc})",
                retry=False,
                kind=TEMPLATE,
            ) from None
        return body, "application/json"

    async def send(self, *, to: str, text: str, reference: str) -> str:
        """Hand the SMS to the gateway; the gateway's message ID, else `HTTP <status>`."""
        if self.url is None:
            raise SmsError(
                "SMS is off: no SMS gateway is configured (ICC_SMS_URL)", retry=False, kind=OFF
            )
        body, content_type = self.request(to=to, text=text, reference=reference)
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": content_type,
            "Idempotency-Key": reference,
        }
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                # A redirect is an answer, not an address to take the token to.
                http.post(
                    self.url, data=body.encode(), headers=headers, allow_redirects=False
                ) as answer,
            ):
                said = await answer.text(errors="replace")
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SmsError(f"{type(exc).__name__}: {exc}".rstrip(": "), kind=UNREACHABLE) from None
        if not 200 <= status < 300:
            reason = " ".join(said.split())[:REASON_CHARS]
            raise SmsError(
                f"the gateway answered HTTP {status}" + (f": {reason}" if reason else "")
            )
        return _message_id(said) or f"HTTP {status}"


def sample_request(gateway: SmsGateway) -> tuple[str, str]:
    """The request a sample SMS makes with the templates in force (body, content type), as
    `icc-bot check` shows it; `SmsError` when the operator's template does not make one."""
    return gateway.request(
        to="+32475123456", text='ICC PAGE PG-1: a "sample" SMS', reference="PG-1.1"
    )


def _message_id(answer: str) -> str | None:
    """The gateway's ID for the message: `id` at the top of a JSON answer."""
    try:
        found = json.loads(answer).get(MESSAGE_ID_FIELD)
    except (ValueError, AttributeError):
        return None
    if isinstance(found, bool) or not isinstance(found, str | int) or found == "":
        return None
    return str(found)[:255]


def signature(secret: str, body: bytes) -> str:
    """What `X-ICC-Signature` carries for `body`: its HMAC-SHA256 under the secret, in hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` (a `sha256=` prefix, as some gateways write it, allowed)."""
    if not header:
        return False
    given = header.strip().lower().removeprefix("sha256=")
    return hmac.compare_digest(signature(secret, body).encode(), given.encode(errors="replace"))


def e164(number: str) -> str:
    """A sender's number as the directory writes it: `+32475123456` from `0032 475 12 34 56`
    or `32475123456` (gateways differ); anything else as it came."""
    compact = re.sub(r"[\s().\-/]", "", number)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.isdigit():
        compact = "+" + compact
    return compact


def last_digits(number: str) -> str:
    return "…" + number[-3:] if len(number) > 3 else "…"


class Inbound(enum.Enum):
    """What came of an inbound delivery; `status`: the web endpoint's answer to the gateway."""

    REFUSED = "refused"  # not signed with ICC_SMS_SECRET: nothing read
    MALFORMED = "malformed"  # signed, but not {"from": …, "text": …}
    ACKNOWLEDGED = "acknowledged"
    IGNORED = "ignored"  # read, nothing to do: not an ack, an unknown number, a page not theirs

    @property
    def status(self) -> int:
        return {"refused": 401, "malformed": 400}.get(self.value, 200)


@dataclass(frozen=True, kw_only=True)
class SmsReplies:
    """Inbound SMS: acknowledgements by reply; the web layer (`bot.web`) only speaks HTTP."""

    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    answers: Answers
    signature_header: ClassVar[str] = SIGNATURE_HEADER
    max_body: ClassVar[int] = MAX_BODY

    async def receive(self, body: bytes, signature_header: str | None) -> Inbound:
        """One delivery from the gateway: read when signed, acted on when it acknowledges."""
        secret = self.settings.sms_secret
        if not secret or not signed(secret, body, signature_header):
            log.warning("inbound SMS refused: missing or wrong %s", SIGNATURE_HEADER)
            return Inbound.REFUSED
        message = _inbound(body)
        if message is None:
            log.warning('inbound SMS refused: the body is not {"from": …, "text": …} JSON')
            return Inbound.MALFORMED
        number, text, gateway_id = message
        people = [c for c in self.keeper.current.contacts.values() if c.phone == number]
        if not people:
            log.info("inbound SMS from an unknown number (%s): nothing done", last_digits(number))
            return Inbound.IGNORED
        who = ", ".join(c.handle for c in people)
        ack = read_ack(text)
        if ack is None:
            log.info("inbound SMS from %s is not an acknowledgement: nothing done", who)
            return Inbound.IGNORED
        event_id = f"sms-{gateway_id}" if gateway_id else f"sms-{signature(secret, body)[:16]}"
        if gateway_id and await self._handled(event_id):
            log.info("inbound SMS %s from %s delivered again: nothing done", event_id, who)
            return Inbound.IGNORED
        ref = f"PG-{ack.page}" if ack.page is not None else await self._newest_open(people)
        if ref is None:
            log.info("inbound SMS ack from %s: no open page, nothing done", who)
            return Inbound.IGNORED
        return await self._acknowledge(people, ref, event_id)

    async def _acknowledge(self, people: list[Contact], ref: str, event_id: str) -> Inbound:
        """The page acknowledged for each person with that number it was sent to (a shared duty
        phone may be several people's)."""
        done = Inbound.IGNORED
        for person in people:
            try:
                answer = await self.answers.answer(
                    person.key,
                    ref=ref,
                    relates_to=None,
                    how="sms",
                    event_id=event_id,
                    at=utcnow(),
                )
            except UserError as exc:  # not theirs, no such page, its activation closed
                log.info(
                    "inbound SMS ack of %s from %s: nothing done (%s)", ref, person.handle, exc
                )
                continue
            if answer.first:
                log.info("%s acknowledged by SMS for %s", ref, person.handle)
                done = Inbound.ACKNOWLEDGED
            else:
                log.info("inbound SMS ack of %s from %s: answered before", ref, person.handle)
        return done

    async def _handled(self, event_id: str) -> bool:
        async with self.db.session() as session:
            return await store.acked_by_event(session, event_id)

    async def _newest_open(self, people: list[Contact]) -> str | None:
        """The newest page still waiting for an answer from any of `people`."""
        async with self.db.session() as session:
            newest = [
                rows[0].page_id
                for person in people
                if (rows := await store.open_rows_of(session, person.key))
            ]
        return f"PG-{max(newest)}" if newest else None


def _inbound(body: bytes) -> tuple[str, str, str | None] | None:
    """(sender's number, text, the gateway's ID or None) from a delivery, or None."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    number, text, gateway_id = data.get("from"), data.get("text"), data.get("id")
    if not isinstance(number, str) or not isinstance(text, str):
        return None
    if not isinstance(gateway_id, str | int) or isinstance(gateway_id, bool):
        gateway_id = None
    return e164(number), text, str(gateway_id)[:200] if gateway_id not in (None, "") else None
