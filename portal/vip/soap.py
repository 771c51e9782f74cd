"""The VIP User Services messages: SOAP 1.1 envelopes built and read with lxml.

Shapes as VIP User Services defines them (namespace below, one element per field, in the
WSDL's order); docs/VIP.md names the public material they follow. Parsing never resolves
entities or fetches anything, and accepts only the response element the request expects.
"""

from __future__ import annotations

import secrets

from lxml import etree

from portal.vip.errors import ServiceUnavailable

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
VIP_NS = "https://schemas.symantec.com/vip/2011/04/vipuserservices"
SUCCESS = "0000"

# Where each operation is sent, under VIP_API_BASE_URL.
MANAGEMENT = "ManagementService_1_10"
AUTHENTICATION = "AuthenticationService_1_10"
SERVICE_OF = {
    "CreateUser": MANAGEMENT,
    "AddCredential": MANAGEMENT,
    "RemoveCredential": MANAGEMENT,
    "DeleteUser": MANAGEMENT,
    "AuthenticateUser": AUTHENTICATION,
}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


def new_request_id() -> str:
    """4 to 40 letters, digits and underscores, as VIP asks: random, for tracing one call."""
    return "pp_" + secrets.token_hex(12)


def _add(parent, name: str, value) -> None:
    element = etree.SubElement(parent, f"{{{VIP_NS}}}{name}")
    if isinstance(value, (list, tuple)):
        for child_name, child_value in value:
            if child_value is not None:
                _add(element, child_name, child_value)
    else:
        element.text = str(value)


def envelope(operation: str, fields: list[tuple[str, object]], request_id: str | None = None) -> bytes:
    """`<{operation}Request>` with a requestId and `fields` ((name, value or nested list)), in order."""
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV, "vip": VIP_NS})
    etree.SubElement(root, f"{{{SOAP_ENV}}}Header")
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    request = etree.SubElement(body, f"{{{VIP_NS}}}{operation}Request")
    _add(request, "requestId", request_id or new_request_id())
    for name, value in fields:
        if value is not None:
            _add(request, name, value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse(body: bytes) -> etree._Element:
    """The SOAP body's one element. Raises ServiceUnavailable for anything else."""
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as error:
        raise ServiceUnavailable("the VIP answer is not XML") from error
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise ServiceUnavailable("the VIP answer is not a SOAP envelope")
    found = root.find(f"{{{SOAP_ENV}}}Body")
    children = list(found) if found is not None else []
    if len(children) != 1:
        raise ServiceUnavailable("the VIP answer has no single body element")
    return children[0]


def text_of(element, name: str) -> str | None:
    child = element.find(f"{{{VIP_NS}}}{name}")
    return child.text.strip() if child is not None and child.text else None


def fields_of(element) -> dict:
    """A request's fields by local name (nested elements as dicts)."""
    out = {}
    for child in element:
        name = etree.QName(child).localname
        out[name] = fields_of(child) if len(child) else (child.text or "").strip()
    return out


def status_of(body: bytes, operation: str) -> tuple[str, str]:
    """(status, statusMessage) of `<{operation}Response>`. Raises ServiceUnavailable for a
    fault, another element or a response without a status."""
    element = parse(body)
    if element.tag == f"{{{SOAP_ENV}}}Fault":
        raise ServiceUnavailable("the VIP service answered with a SOAP fault")
    if element.tag != f"{{{VIP_NS}}}{operation}Response":
        raise ServiceUnavailable(f"the VIP answer is not a {operation}Response")
    status = text_of(element, "status")
    if not status:
        raise ServiceUnavailable("the VIP answer has no status")
    return status, text_of(element, "statusMessage") or ""


def response(operation: str, request_id: str, status: str, message: str,
             extra: list[tuple[str, object]] = ()) -> bytes:
    """A `<{operation}Response>` envelope (the stand-in's answers)."""
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"S": SOAP_ENV})
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    element = etree.SubElement(body, f"{{{VIP_NS}}}{operation}Response", nsmap={None: VIP_NS})
    for name, value in [("requestId", request_id), ("status", status), ("statusMessage", message), *extra]:
        _add(element, name, value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def fault(message: str) -> bytes:
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"S": SOAP_ENV})
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    element = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = "S:Server"
    etree.SubElement(element, "faultstring").text = message
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
