"""Tests for schemas.screening: the lexicon screen for special-category, police and stigmatising
data in free text, and the BSN detector."""

from __future__ import annotations

import csv
import functools
import re
import time
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from schemas.fuzzy import FuzzyIndex
from schemas.normalise import fold, variants
from schemas.screening import (
    BSN_CATEGORY,
    BSN_TERM,
    Finding,
    Lexicon,
    LexiconError,
    load_default_lexicon,
)

CORPUS = Path(__file__).parent / "data" / "screening_corpus.csv"
MIN_RECALL = 0.95
MAX_FALSE_ALARMS = 0.03

CATEGORIES = (
    "gezondheid",
    "religie",
    "etniciteit",
    "seksualiteit",
    "politiek",
    "vakbond",
    "genetisch_biometrisch",
    "strafrechtelijk",
    "stigmatiserend",
)

# Test BSNs: they pass the elfproef but are well-known examples, not numbers of real people.
VALID_BSNS = ("111222333", "123456782", "999999990", "100000009")


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    """The shipped lexicon."""
    return load_default_lexicon()


def categories_of(lexicon: Lexicon, text: str) -> set[str]:
    """The categories ``screen`` reports for ``text``."""
    return {f.category for f in lexicon.screen(text)}


# -- the shipped lexicon ------------------------------------------------------------------------


def test_default_lexicon_has_all_categories(lexicon: Lexicon) -> None:
    """Every expected category is present with a Dutch label, legal basis and message."""
    by_id = {c.id: c for c in lexicon.categories}
    assert set(CATEGORIES) <= set(by_id)
    assert BSN_CATEGORY in by_id and by_id[BSN_CATEGORY].detector == "bsn"
    for cat_id in CATEGORIES:
        cat = by_id[cat_id]
        assert cat.label and cat.legal_basis and cat.message
        assert cat.terms or cat.terms_case_sensitive
    assert "AVG art. 9" in by_id["gezondheid"].legal_basis
    assert "AVG art. 10" in by_id["strafrechtelijk"].legal_basis
    assert "Bijlage 2" in by_id["stigmatiserend"].legal_basis


def test_default_lexicon_is_cached() -> None:
    """load_default_lexicon returns the same object every time."""
    assert load_default_lexicon() is load_default_lexicon()


# -- known positives ----------------------------------------------------------------------------

POSITIVES = [
    # gezondheid: diagnoses, inflections, abbreviations, institutions, medication, pregnancy
    ("Leerling heeft ASS", "gezondheid"),
    ("leerling is autistisch", "gezondheid"),
    ("autistische jongen", "gezondheid"),
    ("diagnose autisme", "gezondheid"),
    ("ADHD'er, snel afgeleid", "gezondheid"),
    ("adhd-medicatie werkt niet", "gezondheid"),
    ("ADD, dromerig", "gezondheid"),
    ("PDD-NOS", "gezondheid"),
    ("pdd nos volgens het verslag", "gezondheid"),
    ("ODD en botst met gezag", "gezondheid"),
    ("PTSS na vlucht", "gezondheid"),
    ("OCD-klachten", "gezondheid"),
    ("DCD, moeite met schrijven", "gezondheid"),
    ("LVB-jongere", "gezondheid"),
    ("NLD vastgesteld", "gezondheid"),
    ("depressief sinds de zomer", "gezondheid"),
    ("depressieve klachten", "gezondheid"),
    ("een depressie", "gezondheid"),
    ("burn-out", "gezondheid"),
    ("burnout na het examenjaar", "gezondheid"),
    ("angststoornis", "gezondheid"),
    ("eetstoornis", "gezondheid"),
    ("anorexia nervosa", "gezondheid"),
    ("boulimia", "gezondheid"),
    ("epilepsie", "gezondheid"),
    ("diabetes type 1", "gezondheid"),
    ("kanker", "gezondheid"),
    ("chronisch ziek", "gezondheid"),
    ("chronische ziekte", "gezondheid"),
    ("medicatie aangepast", "gezondheid"),
    ("slikt Ritalin", "gezondheid"),
    ("Concerta 36 mg", "gezondheid"),
    ("methylfenidaat", "gezondheid"),
    ("antidepressiva", "gezondheid"),
    ("in zorg bij de GGZ", "gezondheid"),
    ("wacht op jeugd-GGZ", "gezondheid"),
    ("behandeling bij Karakter", "gezondheid"),
    ("aangemeld bij Pro Persona", "gezondheid"),
    ("gesprek met psychiater", "gezondheid"),
    ("bij de psycholoog", "gezondheid"),
    ("speltherapie", "gezondheid"),
    ("opname in de kliniek", "gezondheid"),
    ("ligt in het ziekenhuis", "gezondheid"),
    ("leerling is zwanger", "gezondheid"),
    ("zwangerschap", "gezondheid"),
    ("ziekte van Pfeiffer", "gezondheid"),
    ("ziekte van Lyme", "gezondheid"),
    ("suïcidale gedachten", "gezondheid"),
    # religie
    ("moslim", "religie"),
    ("islamitische ouders", "religie"),
    ("christelijk gezin", "religie"),
    ("katholieke school", "religie"),
    ("joodse feestdagen", "religie"),
    ("hindoeïstisch", "religie"),
    ("hindoeistisch", "religie"),
    ("het geloof van ouders", "religie"),
    ("Geloof speelt een grote rol", "religie"),
    ("gaat naar de moskee", "religie"),
    ("actief in de kerk", "religie"),
    ("tijdens de ramadan", "religie"),
    ("richtingbezwaar", "religie"),
    ("vrijstelling art. 5 onder b", "religie"),
    # etniciteit
    ("van Turkse afkomst", "etniciteit"),
    ("etnische achtergrond", "etniciteit"),
    ("allochtone leerling", "etniciteit"),
    ("Marokkaanse jongen", "etniciteit"),
    ("Marokkanen", "etniciteit"),
    ("Turks gezin", "etniciteit"),
    ("Surinaamse moeder", "etniciteit"),
    ("Antilliaanse jongere", "etniciteit"),
    ("Roma-gezin", "etniciteit"),
    ("Sinti", "etniciteit"),
    ("gepest om zijn huidskleur", "etniciteit"),
    ("Eritrese jongen", "etniciteit"),
    ("Afghaanse ouders", "etniciteit"),
    ("Bulgaarse familie", "etniciteit"),
    ("heeft de Syrische nationaliteit", "etniciteit"),
    # seksualiteit
    ("is homo", "seksualiteit"),
    ("homo's", "seksualiteit"),
    ("lesbisch", "seksualiteit"),
    ("biseksueel", "seksualiteit"),
    ("transgender", "seksualiteit"),
    ("non-binair", "seksualiteit"),
    ("genderdysforie", "seksualiteit"),
    ("LHBTI", "seksualiteit"),
    ("LHBTIQ+ jongere", "seksualiteit"),
    ("seksuele oriëntatie", "seksualiteit"),
    # politiek
    ("politieke voorkeur", "politiek"),
    ("lid van de PVV", "politiek"),
    ("lid van een partij", "politiek"),
    ("zorgen over radicalisering", "politiek"),
    ("extreemrechtse uitlatingen", "politiek"),
    # vakbond
    ("lid van de vakbond", "vakbond"),
    ("vakbondslid", "vakbond"),
    ("FNV", "vakbond"),
    ("CNV", "vakbond"),
    # genetisch / biometrisch
    ("DNA-onderzoek", "genetisch_biometrisch"),
    ("genetisch onderzoek", "genetisch_biometrisch"),
    ("erfelijke aandoening", "genetisch_biometrisch"),
    ("vingerafdruk", "genetisch_biometrisch"),
    ("gezichtsherkenning", "genetisch_biometrisch"),
    ("biometrische gegevens", "genetisch_biometrisch"),
    # strafrechtelijk
    ("doorverwezen naar Halt", "strafrechtelijk"),
    ("Halt-traject", "strafrechtelijk"),
    ("halt-traject afgerond", "strafrechtelijk"),
    ("proces-verbaal", "strafrechtelijk"),
    ("procesverbaal opgemaakt", "strafrechtelijk"),
    ("pv opgemaakt", "strafrechtelijk"),
    ("PV opgemaakt", "strafrechtelijk"),
    ("politie", "strafrechtelijk"),
    ("wijkagent", "strafrechtelijk"),
    ("een agent bracht hem thuis", "strafrechtelijk"),
    ("arrestatie", "strafrechtelijk"),
    ("aangehouden door de politie", "strafrechtelijk"),
    ("verdachte", "strafrechtelijk"),
    ("jeugdreclassering", "strafrechtelijk"),
    ("reclassering", "strafrechtelijk"),
    ("officier van justitie", "strafrechtelijk"),
    ("zaak bij het OM", "strafrechtelijk"),
    ("rechter", "strafrechtelijk"),
    ("kinderrechter", "strafrechtelijk"),
    ("jeugdgevangenis", "strafrechtelijk"),
    ("justitiële jeugdinrichting", "strafrechtelijk"),
    ("JJI", "strafrechtelijk"),
    ("taakstraf", "strafrechtelijk"),
    ("werkstraf", "strafrechtelijk"),
    ("strafblad", "strafrechtelijk"),
    ("diefstal", "strafrechtelijk"),
    ("winkeldiefstal", "strafrechtelijk"),
    ("mishandeling", "strafrechtelijk"),
    ("vernieling", "strafrechtelijk"),
    # stigmatiserend
    ("kindermishandeling", "stigmatiserend"),
    ("huiselijk geweld", "stigmatiserend"),
    ("opvoedproblemen", "stigmatiserend"),
    ("opvoedingsproblemen", "stigmatiserend"),
    ("drank", "stigmatiserend"),
    ("alcohol", "stigmatiserend"),
    ("drugs", "stigmatiserend"),
    ("drugsgebruik", "stigmatiserend"),
    ("cannabis", "stigmatiserend"),
    ("blowen", "stigmatiserend"),
    ("verslaving", "stigmatiserend"),
    ("gameverslaving", "stigmatiserend"),
    ("melding bij Veilig Thuis", "stigmatiserend"),
    ("Veilig Thuis is betrokken", "stigmatiserend"),
    ("uithuisplaatsing", "stigmatiserend"),
    ("OTS", "stigmatiserend"),
    ("ondertoezichtstelling", "stigmatiserend"),
    ("jeugdbescherming", "stigmatiserend"),
]


@pytest.mark.parametrize(("text", "category"), POSITIVES)
def test_known_positive(lexicon: Lexicon, text: str, category: str) -> None:
    """Known terms (with inflections and abbreviations) are flagged with their category."""
    assert category in categories_of(lexicon, text)


# Examples that rely on a case-sensitive term (abbreviations that are also ordinary words).
CASE_SENSITIVE_EXAMPLES = {
    "Leerling heeft ASS",
    "ADD, dromerig",
    "ODD en botst met gezag",
    "behandeling bij Karakter",
    "ziekte van Lyme",
    "zaak bij het OM",
    "doorverwezen naar Halt",
    "Veilig Thuis is betrokken",
}


@pytest.mark.parametrize(("text", "category"), POSITIVES)
def test_known_positive_in_any_case(lexicon: Lexicon, text: str, category: str) -> None:
    """Case-insensitive terms are found in upper and lower case inside a sentence."""
    sentence = f"Toelichting: {text}, zie dossier."
    assert category in categories_of(lexicon, sentence)
    assert category in categories_of(lexicon, sentence.upper())
    if text not in CASE_SENSITIVE_EXAMPLES:
        assert category in categories_of(lexicon, sentence.lower())


# -- known negatives ----------------------------------------------------------------------------

NEGATIVES = [
    # general reasons the convenant asks for
    "Wacht op plaatsing",
    "Conflict met school",
    "Geen passend aanbod",
    "Schoolweigering",
    "Verhuisd",
    "Ziek gemeld",
    "Ziekgemeld sinds maandag",
    "Langdurig ziek",
    "Ziekte",
    "Onderwijsbehoefte onduidelijk",
    "Wachtlijst",
    "Problemen in de klas",
    "Pesten",
    "Wordt gepest",
    "Motivatieproblemen",
    "Onvoldoende aansluiting bij het niveau",
    "Om medische redenen thuis",
    "Jeugdarts is betrokken",
    "Faalangst en schoolangst",
    "Hoogbegaafd",
    "Gedragsproblemen",
    "Jeugdhulp via het wijkteam",
    "Schoolpsycholoog doet onderzoek naar de onderwijsbehoefte",
    "Nieuwkomer, wacht op plaatsing in de ISK",
    "Spreekt nog weinig Nederlands",
    "Vrijstelling op grond van artikel 5 onder a",
    # words that resemble terms
    "Om die reden een gesprek",
    "Team om de leerling heen",
    "Agenda volgt",
    "Woont aan de Kerkstraat",
    "Halte van de bus is verplaatst",
    "Het verzuim moet een halt toegeroepen worden",
    "Leerling heeft een sterk karakter",
    "Ik geloof dat hij terug wil",
    "Ouders geloven er niet in",
    "Voelt zich veilig thuis",
    "Ouders houden zich Oost-Indisch doof",
    "Samenwerking zit in ons DNA",
    "De transitie van po naar vo",
    "De aanvraag is in behandeling",
    "Contact opgenomen met moeder",
    "Alle partijen zijn akkoord",
    "Politieke discussie in de klas",
    "Proeve van bekwaamheid (PvB) gehaald",
    "Overleg met de orthopedagoog",
    # ordinary meanings of words that also have a police or medical sense
    "Besluit over de TLV is aangehouden tot na de zomer",
    "Leerling heeft het schoolwerk weer opgepakt",
    "Kan slecht dealen met kritiek",
    "Moeder voelde zich overvallen door het huisbezoek",
    "Ouders vertrouwen de school blind",
    "De proefplaatsing is goed bevallen",
    "Het was een hele operatie om vervoer te regelen",
    "Leerling zwerft tijdens tussenuren door de school",
    "We stemmen de aanpak op elkaar af",
    "Verhuisd naar het buitenland",
    "Gesprek op het stadhuis",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_known_negative(lexicon: Lexicon, text: str) -> None:
    """General wording and look-alike words are not flagged."""
    assert lexicon.screen(text) == []


def test_empty_text(lexicon: Lexicon) -> None:
    """Empty text has no findings."""
    assert lexicon.screen("") == []
    assert lexicon.screen_bsn_only("") == []


# -- findings -----------------------------------------------------------------------------------


def test_finding_reports_term_as_written(lexicon: Lexicon) -> None:
    """The term is the matched text as it appears, with the category's Dutch message."""
    [finding] = lexicon.screen("Leerling heeft een Depressie en blijft thuis")
    assert finding == Finding(
        category="gezondheid",
        term="Depressie",
        message=next(c.message for c in lexicon.categories if c.id == "gezondheid"),
    )


def test_several_categories_one_finding_each(lexicon: Lexicon) -> None:
    """Every category is reported once, in lexicon order."""
    text = "ADHD en autisme; vader gedetineerd, moeder moslim; politie en Halt betrokken"
    findings = lexicon.screen(text)
    assert [f.category for f in findings] == ["gezondheid", "religie", "strafrechtelijk"]


def test_case_sensitive_abbreviations(lexicon: Lexicon) -> None:
    """Abbreviations that are also ordinary words only count in capitals."""
    assert categories_of(lexicon, "zaak ligt bij het OM") == {"strafrechtelijk"}
    assert categories_of(lexicon, "om die reden") == set()
    assert categories_of(lexicon, "Leerling heeft ADD") == {"gezondheid"}
    assert categories_of(lexicon, "add to calendar") == set()
    assert categories_of(lexicon, "Halt") == {"strafrechtelijk"}
    assert categories_of(lexicon, "halt toeroepen") == set()


def test_long_text_is_linear(lexicon: Lexicon) -> None:
    """Long texts (no catastrophic backtracking) are screened quickly."""
    texts = [
        "a" * 100_000,
        ("x" * 50 + "stoornis ") * 2_000,
        "leerling wacht op plaatsing " * 4_000,
        "1234 56 " * 12_000,
    ]
    start = time.perf_counter()
    for text in texts:
        lexicon.screen(text)
    assert time.perf_counter() - start < 2.0


def test_decomposed_unicode_is_normalised(lexicon: Lexicon) -> None:
    """Text in NFD (e + combining diaeresis) is matched like NFC text."""
    text = unicodedata.normalize("NFD", "Hindoeïstisch gezin")
    assert text != unicodedata.normalize("NFC", text)
    assert categories_of(lexicon, text) == {"religie"}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("ＡＤＨＤ", "gezondheid"),  # full-width letters
        ("Leerling heeft Asperger", "gezondheid"),
        ("homoﬁele jongen", "seksualiteit"),  # fi ligature
        ("\u0130slamitische school", "religie"),  # Turkish dotted capital I
    ],
)
def test_look_alike_characters(lexicon: Lexicon, text: str, category: str) -> None:
    """Compatibility characters are normalised (NFKC) before screening."""
    assert category in categories_of(lexicon, text)


# -- BSN ----------------------------------------------------------------------------------------


def bsn_notations(number: str) -> list[str]:
    """The ways people write a nine-digit number."""
    a, b, c = number[:4], number[4:6], number[6:]
    return [
        number,
        f"{a}.{b}.{c}",
        f"{a} {b} {c}",
        f"{a}-{b}-{c}",
        f"{number[:3]} {number[3:5]} {number[5:]}",
        f"{number[:3]}.{number[3:6]}.{number[6:]}",
        f"{number[:3]} {number[3:6]} {number[6:]}",
    ]


@pytest.mark.parametrize("number", VALID_BSNS)
def test_bsn_flagged_in_all_notations(lexicon: Lexicon, number: str) -> None:
    """A valid (elfproef) BSN is flagged however it is written, and the number never leaks."""
    for written in bsn_notations(number):
        for text in (
            written,
            f"BSN {written} van de leerling",
            f"bsn:{written}.",
            f"(BSN{written})",
            f"Leerling met ADHD, bsn {written}",
        ):
            findings = lexicon.screen(text)
            assert BSN_CATEGORY in {f.category for f in findings}, text
            bsn_findings = [f for f in findings if f.category == BSN_CATEGORY]
            assert len(bsn_findings) == 1
            assert bsn_findings[0].term == BSN_TERM
            assert lexicon.screen_bsn_only(text) == bsn_findings
            for finding in findings:
                for leaked in (number, written):
                    assert leaked not in finding.category
                    assert leaked not in finding.term
                    assert leaked not in finding.message
                    assert leaked not in repr(finding)
                    assert leaked not in str(finding)


def test_screen_bsn_only_ignores_words(lexicon: Lexicon) -> None:
    """screen_bsn_only reports nothing but BSN-looking numbers."""
    assert lexicon.screen_bsn_only("ADHD, politie, moslim") == []
    assert [f.category for f in lexicon.screen_bsn_only("ADHD 123456782")] == [BSN_CATEGORY]


@pytest.mark.parametrize(
    "text",
    [
        "BSN 123456789",  # fails the elfproef
        "1234.56.789",  # fails the elfproef
        "000000000",
        "Gesprek op 2024-01-15",
        "Gesprek op 15-01-2024",
        "Afspraak 12.03.2024 om 09:15",
        "Dossier 20240115",
        "Postcode 1234 AB",
        "Postcode 1234AB, huisnummer 12",
        "Bel 06-12345678",
        "Bel 0612345678",
        "Bel +31 6 12345678",
        "Bel +31612345678",
        "Bel 020 123 4567",
        "Bel 020-1234567",
        "IBAN NL91ABNA0417164300",
        "Kenmerk 1234567820",  # ten digits, although 123456782 would pass
        "Nummer 1111222333",  # ten digits, although 111222333 would pass
        "Reeks 123.456.782.1",  # more digit groups than a BSN has
        "Zaaknummer 2023/0045/123",
        "KvK 10000008",  # eight digits: not flagged by design, even though 010000008 passes
        "16 uur verzuim in 4 weken",
    ],
)
def test_no_bsn_false_alarm(lexicon: Lexicon, text: str) -> None:
    """Dates, postcodes, phone numbers and invalid numbers are not taken for a BSN."""
    assert lexicon.screen_bsn_only(text) == []
    assert BSN_CATEGORY not in categories_of(lexicon, text)


# -- loading custom lexicons --------------------------------------------------------------------


def small_lexicon(**extra: object) -> dict[str, object]:
    """A minimal lexicon mapping."""
    table: dict[str, object] = {
        "label": "Test",
        "legal_basis": "test",
        "message": "Testmelding",
        "terms": ["appel(s|tje|tjes)?", r"\w*peer"],
        "terms_case_sensitive": ["XY"],
    }
    table.update(extra)
    return {"fruit": table}


def test_custom_lexicon_from_mapping() -> None:
    """A lexicon from a mapping screens with its own terms and a built-in BSN detector."""
    lx = Lexicon.from_mapping(small_lexicon())
    assert [f.term for f in lx.screen("twee appeltjes")] == ["appeltjes"]
    assert [f.term for f in lx.screen("een handpeer")] == ["handpeer"]
    assert lx.screen("appelmoes") == []
    assert [f.term for f in lx.screen("code XY")] == ["XY"]
    assert lx.screen("code xy") == []
    assert [f.category for f in lx.screen("123456782")] == [BSN_CATEGORY]


def test_custom_lexicon_from_file(tmp_path: Path) -> None:
    """from_file reads TOML."""
    path = tmp_path / "lexicon.toml"
    path.write_text(
        '[fruit]\nlabel = "Fruit"\nlegal_basis = "test"\nmessage = "Geen fruit"\n'
        "terms = ['appel(s)?']\n",
        encoding="utf-8",
    )
    lx = Lexicon.from_file(path)
    assert lx.screen("drie appels") == [Finding("fruit", "appels", "Geen fruit")]


@pytest.mark.parametrize(
    "bad",
    [
        {"terms": ["(ab)?c"]},  # no literal of 2+ characters a match starts a word with
        {"terms": ["a"]},  # too short for a trigger
        {"terms": ["(unbalanced"]},
        {"terms": ["(?P<x>appel)"]},
        {"terms": ["appel(?i)"]},
        {"terms": "appel"},
        {"label": ""},
        {"detector": "iban"},
    ],
)
def test_bad_lexicon_rejected(bad: dict[str, object]) -> None:
    """Malformed tables and terms without a usable fast-path trigger are rejected."""
    with pytest.raises(LexiconError):
        Lexicon.from_mapping(small_lexicon(**bad))


# -- the fast path is exact ---------------------------------------------------------------------


@functools.cache
def _fuzzy_index(lexicon: Lexicon) -> FuzzyIndex:
    return FuzzyIndex((word, cat.id) for cat in lexicon.categories for word in cat.fuzzy)


def reference_categories(lexicon: Lexicon, text: str) -> set[str]:
    """Categories found by one plain alternation per category, without any prefilter, over every
    form the screen looks at (the folded text and its variants), plus the fuzzy words."""
    folded = fold(text)
    forms = [folded, *variants(folded)]
    fuzzy = _fuzzy_index(lexicon)
    found = {cat_id for form in forms for cat_id, _, _ in fuzzy.search(form.lower())}
    for cat in lexicon.categories:
        if cat.detector:
            continue
        branches = [f"(?:{t})" for t in cat.terms]
        branches += [f"(?-i:{t})" for t in cat.terms_case_sensitive]
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(branches) + r")(?!\w)", re.IGNORECASE)
        if any(pattern.search(form) for form in forms):
            found.add(cat.id)
    return found


def corpus_rows() -> list[tuple[str, str]]:
    """The labelled corpus as (text, label)."""
    with CORPUS.open(encoding="utf-8", newline="") as fh:
        return [(row["text"], row["label"]) for row in csv.DictReader(fh)]


def test_fast_path_matches_plain_regexes(lexicon: Lexicon) -> None:
    """Prefilter and factored patterns find exactly what plain per-category regexes find."""
    texts = [text for text, _ in corpus_rows()]
    texts += [text for text, _ in POSITIVES] + NEGATIVES
    texts += [t.lower() for t in texts] + [t.upper() for t in texts]
    mismatches = []
    for text in texts:
        fast = categories_of(lexicon, text) - {BSN_CATEGORY}
        if fast != reference_categories(lexicon, text):
            mismatches.append(text)
    assert mismatches == []


# -- the labelled corpus ------------------------------------------------------------------------


def test_corpus_is_large_and_labelled() -> None:
    """The corpus has at least 150 positives over all categories and 150 negatives."""
    rows = corpus_rows()
    labels = Counter(label for _, label in rows)
    assert set(labels) <= {*CATEGORIES, "ok"}
    assert labels["ok"] >= 150
    assert sum(n for label, n in labels.items() if label != "ok") >= 150
    assert all(labels[c] >= 10 for c in CATEGORIES)
    texts = [text for text, _ in rows]
    assert len(set(texts)) == len(texts)


def test_corpus_recall_and_false_alarms(
    lexicon: Lexicon, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recall >= 0.95 on the labelled positives and false alarms <= 0.03 on the ok texts."""
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    false_alarms = 0
    misses = []
    alarms = []
    for text, label in corpus_rows():
        found = categories_of(lexicon, text)
        totals[label] += 1
        if label == "ok":
            if found:
                false_alarms += 1
                alarms.append(text)
        elif label in found:
            hits[label] += 1
        else:
            misses.append(f"{label}: {text}")
    positives = sum(n for label, n in totals.items() if label != "ok")
    recall = sum(hits.values()) / positives
    false_alarm_rate = false_alarms / totals["ok"]
    with capsys.disabled():
        print(
            f"\nscreening corpus: recall {recall:.3f} ({sum(hits.values())}/{positives}), "
            f"false alarms {false_alarm_rate:.3f} ({false_alarms}/{totals['ok']})"
        )
        for cat in CATEGORIES:
            print(f"  {cat:<22} recall {hits[cat] / totals[cat]:.3f} ({hits[cat]}/{totals[cat]})")
        for line in misses:
            print(f"  missed      {line}")
        for line in alarms:
            print(f"  false alarm {line}")
    assert recall >= MIN_RECALL
    assert false_alarm_rate <= MAX_FALSE_ALARMS
