"""Query arguments of the quarantine listing."""

from __future__ import annotations

from server.request_body import PageQuerySchema
from sync_protocol.messages import ChoiceString


class QuarantineQuerySchema(PageQuerySchema):
    """`?limit=&offset=&reveal=`: `reveal=sensitive` shows identity numbers and phones in clear
    to roles in REVEAL_ROLES (each submission so shown is audited); any other value is a 422."""

    reveal = ChoiceString(("sensitive",))
