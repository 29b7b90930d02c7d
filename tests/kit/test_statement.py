"""Consent statements: nonce generation, hashing and transcript matching."""

from __future__ import annotations

from voiceseal.consents import statement as st


def test_nonce_is_fresh_and_hashed() -> None:
    a, b = st.new_nonce(), st.new_nonce()
    assert a != b and len(a.split()) == 4
    assert st.nonce_hash(a) == st.nonce_hash(a.upper()) != st.nonce_hash(b)


def test_statement_names_everyone() -> None:
    s = st.build_statement("Ada Lovelace", ["Acme"], ["audiobooks"], "apple river orange castle")
    assert "Ada Lovelace" in s and "Acme" in s and "audiobooks" in s
    assert s.endswith("apple river orange castle.")


def test_match_accepts_recogniser_noise() -> None:
    s = st.build_statement("Ada", ["Acme"], ["ads"], "apple river orange castle")
    heard = "I am Ada, I agree that acme may use a synthetic version of my voice for ads. My confirmation words are Apple, river, orange, castle."
    m = st.match(s, "apple river orange castle", heard)
    assert m.nonce_found and m.statement_ratio > 0.9


def test_match_refuses_wrong_nonce_and_other_text() -> None:
    s = st.build_statement("Ada", ["Acme"], ["ads"], "apple river orange castle")
    old = s.replace("apple river orange castle", "tiger lemon zebra kettle")
    assert not st.match(s, "apple river orange castle", old).nonce_found
    m = st.match(s, "apple river orange castle", "the weather is lovely today")
    assert not m.nonce_found and m.statement_ratio < 0.3


def test_digits_and_words_normalise_alike() -> None:
    assert st.normalize_words("Room 42!") == "room four two"
