"""US phone numbers for SMS: parsing with libphonenumber, E.164 storage, masking."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from portal.mfa.errors import InvalidPhoneNumber

_REFUSED_TYPES = {
    PhoneNumberType.TOLL_FREE: "Toll-free numbers cannot receive codes. Enter a US mobile number.",
    PhoneNumberType.PREMIUM_RATE: "Premium-rate numbers cannot receive codes. Enter a US mobile number.",
    PhoneNumberType.SHARED_COST: "Shared-cost numbers cannot receive codes. Enter a US mobile number.",
    PhoneNumberType.PERSONAL_NUMBER: "Personal (5XX) numbers cannot receive codes. Enter a US mobile number.",
    PhoneNumberType.PAGER: "Pagers cannot receive codes. Enter a US mobile number.",
    PhoneNumberType.UAN: "That number cannot receive codes. Enter a US mobile number.",
    PhoneNumberType.VOICEMAIL: "Voicemail numbers cannot receive codes. Enter a US mobile number.",
}


def parse_us_number(raw: str) -> str:
    """Return the E.164 form of a valid US number, or raise InvalidPhoneNumber.

    Only numbers libphonenumber places in the US are accepted: other +1 countries (Canada,
    the Caribbean), other country codes, toll-free and premium numbers are refused.
    Does not check that the number can receive SMS; the code sent to it proves that.
    """
    raw = (raw or "").strip()
    if not raw or len(raw) > 40:
        raise InvalidPhoneNumber()
    try:
        number = phonenumbers.parse(raw, "US")
    except NumberParseException as error:
        raise InvalidPhoneNumber() from error
    if number.extension:
        raise InvalidPhoneNumber("A number with an extension cannot receive text messages. "
                                 "Enter a US mobile number without the extension.")
    if number.country_code != 1:
        raise InvalidPhoneNumber("Only US phone numbers (country code +1) can be used for SMS codes.")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("That is not a valid US phone number. Check the area code and number.")
    if phonenumbers.region_code_for_number(number) != "US":
        raise InvalidPhoneNumber("Only US phone numbers can be used for SMS codes; this number is outside the US.")
    message = _REFUSED_TYPES.get(phonenumbers.number_type(number))
    if message:
        raise InvalidPhoneNumber(message)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """(***) ***-1234: enough for the owner to recognise, nothing more."""
    return f"(***) ***-{e164[-4:]}"
