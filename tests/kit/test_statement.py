"""Consent statements: nonce generation, hashing and transcript matching."""

from __future__ import annotations

from voiceseal.consents import statement as st


def test_nonce_is_fresh_and_hashed() -> None:
    a, b = st.new_nonce(), st.new_nonce()
    digits = a.replace(",", "").split()
    assert a != b and len(digits) == 8 and all(d.isdigit() for d in digits)
    assert st.nonce_hash(a) == st.nonce_hash(a.upper()) != st.nonce_hash(b)


def test_statement_names_everyone() -> None:
    s = st.build_statement("Ada Lovelace", ["Acme"], ["audiobooks"], "4 7 2 9 1 5 0 3")
    assert "Ada Lovelace" in s and "Acme" in s and "audiobooks" in s
    assert s.endswith("4 7 2 9 1 5 0 3.")


def test_match_accepts_recogniser_noise() -> None:
    s = st.build_statement("Ada", ["Acme"], ["ads"], "4 7 2 9 1 5 0 3")
    heard = "I am Ada, I agree that acme may use a synthetic version of my voice for ads. My confirmation number is 47291503."
    m = st.match(s, "4 7 2 9 1 5 0 3", heard)
    assert m.nonce_found and m.statement_ratio > 0.9


def test_match_refuses_wrong_nonce_and_other_text() -> None:
    s = st.build_statement("Ada", ["Acme"], ["ads"], "4 7 2 9 1 5 0 3")
    old = s.replace("4 7 2 9 1 5 0 3", "8 8 1 2 6 0 9 4")
    assert not st.match(s, "4 7 2 9 1 5 0 3", old).nonce_found
    m = st.match(s, "4 7 2 9 1 5 0 3", "the weather is lovely today")
    assert not m.nonce_found and m.statement_ratio < 0.3


def test_one_digit_slip_is_tolerated_two_are_not() -> None:
    s = st.build_statement("Ada", ["Acme"], ["ads"], "4 7 2 9, 1 5 0 3")
    assert st.match(s, "4 7 2 9, 1 5 0 3", "number is 472-1503").nonce_found  # one dropped
    assert st.match(
        s, "4 7 2 9, 1 5 0 3", "number is four seven two nine one five oh three"
    ).nonce_found
    assert not st.match(s, "4 7 2 9, 1 5 0 3", "number is 472-1533").nonce_found  # two edits


def test_digits_and_words_normalise_alike() -> None:
    assert st.normalize_words("Room 42!") == "room four two"
