"""The classification guard: text carrying a classification marking is refused (SPEC: "Text that
carries an EU classification marking … is refused"), however the marking is disguised, while
ordinary text in any language and script passes.

Fast tier: no homeserver, no database.
"""

from __future__ import annotations

import pytest

from bot.chat.classification import DEFAULT_MARKINGS, ClassificationGuard

GUARD = ClassificationGuard()

RLO, RLE, RLM, PDF = "\u202e", "\u202b", "\u200f", "\u202c"

DISGUISED = [
    pytest.param("Briefing SE\u200bCRET UE attached", "SECRET UE", id="zero-width space"),
    pytest.param("RESTR\u200dEINT UE", "RESTREINT UE", id="zero-width joiner"),
    pytest.param("NATO SEC\u200cRET", "NATO SECRET", id="zero-width non-joiner"),
    pytest.param("CONFI\u00adDENTIEL UE", "CONFIDENTIEL UE", id="soft hyphen"),
    pytest.param("COSMIC TO\u2060P SECRET", "COSMIC TOP SECRET", id="word joiner"),
    pytest.param("\ufeffEU RESTRICTED", "EU RESTRICTED", id="byte order mark"),
    pytest.param("SE\u1160CRET UE", "SECRET UE", id="conjoining hangul filler"),
    pytest.param("S\u0415CRET UE", "SECRET UE", id="cyrillic capital E"),
    pytest.param("NAT\u039f CONFIDENTIAL", "NATO CONFIDENTIAL", id="greek capital omicron"),
    pytest.param(
        "diffusion r\u0435str\u0435int\u0435", "DIFFUSION RESTREINTE", id="cyrillic small e"
    ),
    pytest.param("sec\u0433et ue", "SECRET UE", id="cyrillic small ghe as r"),
    pytest.param("\u13da\u13acCRET UE", "SECRET UE", id="cherokee S and E"),
    pytest.param(
        "DEPARTEMENTAAL VERTROUWEL\u0406JK", "DEPARTEMENTAAL VERTROUWELIJK", id="cyrillic I"
    ),
    pytest.param("C0NF1DENTIEL UE", "CONFIDENTIEL UE", id="digits for O and I"),
    pytest.param("EU CONFIDENTIA|", "EU CONFIDENTIAL", id="bar for l"),
    pytest.param("ＲＥＳＴＲＥＩＮＴ ＵＥ", "RESTREINT UE", id="full-width"),
    pytest.param("𝐒𝐄𝐂𝐑𝐄𝐓 𝐔𝐄", "SECRET UE", id="mathematical bold"),
    pytest.param("S\u0336E\u0336C\u0336R\u0336E\u0336T\u0336 UE", "SECRET UE", id="struck through"),
    pytest.param("RESTREINT_UE", "RESTREINT UE", id="underscore"),
    pytest.param("RESTREINT.UE", "RESTREINT UE", id="dot"),
    pytest.param("SECRET-UE", "SECRET UE", id="hyphen"),
    pytest.param("EU • SECRET", "EU SECRET", id="bullet"),
    pytest.param(
        "VS_NUR_FÜR_DEN_DIENSTGEBRAUCH", "VS-NUR FÜR DEN DIENSTGEBRAUCH", id="underscores"
    ),
    pytest.param("SECRET\u3164UE", "SECRET UE", id="blank hangul filler between words"),
    pytest.param("SECRET\uffa0UE", "SECRET UE", id="half-width hangul filler between words"),
    pytest.param("S E C R E T UE", "SECRET UE", id="letter-spaced"),
    pytest.param("S.E.C.R.E.T U.E.", "SECRET UE", id="letter-spaced with dots"),
    pytest.param("V S - N f D", "VS-NfD", id="letter-spaced abbreviation"),
    pytest.param(f"{RLO}EU TERCES", "SECRET UE", id="right-to-left override"),
    pytest.param(f"SECRET {RLO}EU{PDF} tomorrow", "SECRET UE", id="override on one word"),
    pytest.param(f"{RLO}EU_TNIERTSER", "RESTREINT UE", id="override and underscore"),
    pytest.param(f"{RLE}UE{RLM} SECRET{PDF}", "SECRET UE", id="embedding swaps the words"),
    pytest.param("S\u200b\u0415\u00adCRET_U\u200dE", "SECRET UE", id="disguises combined"),
    pytest.param("vs-nur fur den dienstgebrauch", "VS-NUR FÜR DEN DIENSTGEBRAUCH", id="no umlaut"),
    pytest.param("Très secret défense", "TRÈS SECRET DÉFENSE", id="french lower case"),
    pytest.param("tres secret ue", "TRÈS SECRET UE", id="no accent"),
    pytest.param("Diffusion Restreinte", "DIFFUSION RESTREINTE", id="belgian"),
    pytest.param("Beperkte Verspreiding", "BEPERKTE VERSPREIDING", id="dutch"),
]

INNOCENT = [
    pytest.param("The secretary confirmed the meeting", id="secretary"),
    pytest.param("the secret of success is unity", id="secret alone"),
    pytest.param("it is secret", id="is secret"),
    pytest.param("we kept it a secret, ue partners agree", id="comma between the words"),
    pytest.param("SEC RET UE", id="word split but not letter-spaced"),
    pytest.param("S E C R E T", id="letter-spaced word that is no marking"),
    pytest.param("accès restreint au site", id="restreint alone"),
    pytest.param("EU confidentiality rules apply", id="confidentiality"),
    pytest.param("NATO restrictions on airspace", id="restrictions"),
    pytest.param("Москва", id="russian"),
    pytest.param("Совершенно секретно", id="russian for top secret"),
    pytest.param("Αθήνα", id="greek"),
    pytest.param("👩\u200d👩\u200d👧 arrived at the shelter 🚒👍🏽", id="emoji with zwj"),
    pytest.param(f"שלום {RLM}EU meeting at 10:00", id="hebrew with right-to-left mark"),
    pytest.param("Le point de situation de 15h00, l’évacuation est terminée.", id="french"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize(("text", "marking"), DISGUISED)
def test_disguised_marking_is_caught_and_named_as_configured(text: str, marking: str) -> None:
    assert GUARD.marking_in(text) == marking


@pytest.mark.parametrize("text", INNOCENT)
def test_ordinary_text_passes(text: str) -> None:
    assert GUARD.marking_in(text) is None


@pytest.mark.parametrize("marking", DEFAULT_MARKINGS)
def test_every_default_marking_is_caught_as_written(marking: str) -> None:
    assert GUARD.marking_in(f"Report: {marking}.") == marking


def test_fuller_marking_is_named_where_a_shorter_one_also_matches() -> None:
    assert GUARD.marking_in("TRÈS SECRET UE") == "TRÈS SECRET UE"


def test_configured_marking_is_named_as_written() -> None:
    guard = ClassificationGuard(["Très Secret UE"])
    assert guard.marking_in("TRES SECRET UE") == "Très Secret UE"


def test_configured_marking_with_look_alikes_matches_plain_text() -> None:
    guard = ClassificationGuard(["S\u0415CRET UE"])
    assert guard.marking_in("secret ue") == "S\u0415CRET UE"


def test_empty_list_refuses_nothing() -> None:
    assert ClassificationGuard([]).marking_in("SECRET UE") is None


def test_marking_without_letters_matches_nothing() -> None:
    assert ClassificationGuard(["--"]).marking_in("an ordinary message") is None
