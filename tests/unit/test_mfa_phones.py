"""US phone numbers for SMS codes, and the masked destinations shown after the password."""

from __future__ import annotations

import phonenumbers
import pytest

from portal.mfa.errors import InvalidPhoneNumber
from portal.mfa.masking import mask_email
from portal.mfa.phones import mask_phone, parse_us_number

# Numbers libphonenumber validates and places in the US (555-01xx lines included).
US_NUMBERS = {
    "+12025550143": ("(202) 555-0143", "202-555-0143", "+1 202 555 0143"),
    "+12125551234": ("(212) 555-1234", "212-555-1234", "+1 212 555 1234"),
    "+14155552671": ("(415) 555-2671", "415-555-2671", "+1 415 555 2671"),
}


@pytest.mark.parametrize(
    ("e164", "typed"),
    [(e164, typed) for e164, forms in US_NUMBERS.items() for typed in forms],
)
def test_a_us_number_in_any_common_format_gives_one_e164(e164, typed):
    """Does a US number typed with brackets, dashes or +1 come out as the same E.164 number?"""
    number = phonenumbers.parse(e164)  # guard: a number libphonenumber itself places in the US
    assert phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == "US"
    assert parse_us_number(typed) == e164


@pytest.mark.parametrize("typed", ["12025550143x123", "(202) 555-0143 ext. 9", "+1 202 555 0143 extension 12"])
def test_a_number_with_an_extension_is_refused_not_cut_short(typed):
    """Is a desk number with an extension refused with a message saying so, rather than
    stored without its extension (where no text could reach the person)?"""
    with pytest.raises(InvalidPhoneNumber) as refused:
        parse_us_number(typed)
    assert "with an extension cannot receive text messages" in str(refused.value)


def test_surrounding_spaces_are_ignored():
    """Does a number pasted with spaces around it still parse?"""
    assert parse_us_number("  (202) 555-0143 ") == "+12025550143"


@pytest.mark.parametrize(
    "raw",
    [
        "+44 20 7946 0958",  # United Kingdom
        "+1 800 555 0199",  # toll-free
        "+1 888 555 0199",  # toll-free
        "(800) 555-0199",  # toll-free, typed without +1
        "+1 416 555 0199",  # Toronto, Canada
        "+1 876 555 0199",  # Jamaica
        "+1 809 555 0199",  # Dominican Republic
        "123",
        "",
        "   ",
        None,
        "call me maybe",
        "202-555-01ab",
        "2" * 100,
        "+1 202 555 0143 " + "x" * 90,
    ],
    ids=["uk", "toll-free-800", "toll-free-888", "toll-free-national", "canada", "jamaica", "dominican-republic",
         "short", "empty", "blank", "none", "letters", "trailing-letters", "hundred-digits", "hundred-chars"],
)
def test_numbers_outside_the_us_or_not_for_texts_are_refused(raw):
    """Are foreign, +1 Canada/Caribbean, toll-free and junk numbers refused with a clear message?"""
    with pytest.raises(InvalidPhoneNumber) as refused:
        parse_us_number(raw)
    assert str(refused.value)


def test_caribbean_number_is_refused_as_outside_the_us():
    """Does a +1 number outside the US say why it is refused?"""
    with pytest.raises(InvalidPhoneNumber, match="outside the US"):
        parse_us_number("+1 876 555 0199")


def test_toll_free_number_is_refused_as_toll_free():
    """Does a toll-free number say that toll-free numbers cannot get codes?"""
    with pytest.raises(InvalidPhoneNumber, match="Toll-free"):
        parse_us_number("+1 800 555 0199")


def test_phone_is_masked_to_its_last_four_digits():
    """Does the code page show only the last four digits of the phone?"""
    assert mask_phone("+12025551234") == "(***) ***-1234"
    assert "202" not in mask_phone("+12025551234")


def test_email_is_masked_to_first_and_last_letter():
    """Does the code page show only the first and last letter of the email's local part?"""
    assert mask_email("clinician@demo.test") == "c*******n@demo.test"
    assert mask_email("ab@demo.test") == "a*@demo.test"
    assert mask_email("a@demo.test") == "*@demo.test"


def test_personal_5xx_numbers_are_refused():
    """Are non-geographic personal numbers (area codes 5XX) refused like toll-free ones?"""
    with pytest.raises(InvalidPhoneNumber, match="Personal"):
        parse_us_number("+1 500 555 0006")
