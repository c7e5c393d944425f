"""How a field of a client's WebSocket frame is read: the rules `service.frame` (cmd 10
and 11) and `service.event_frame` (cmd 12-15) share, and the error both raise."""
import re
from typing import Optional, Union

MAX_ID = (1 << 63) - 1
# A number sent as a string: ASCII digits only (int() also takes '٣' and, with
# isdigit(), '²' fails), and at most 19 so int() never meets its digit limit.
DIGITS = re.compile(r'-?[0-9]{1,19}')

ClientId = Optional[Union[int, str]]


class FrameError(ValueError):
    """A frame refused, with the reason sent back and the client's id when known."""

    def __init__(self, msg: str, client_id: ClientId = None, reason: Optional[str] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.client_id = client_id
        # docs/protocol.md "Error reasons"; None where the table lists none.
        self.reason = reason


def is_int(value: object) -> bool:
    # What a JSON decoder gives is an int, a bool or something else: no subclasses.
    return type(value) is int


def int_field(raw: dict, name: str, client_id: ClientId, minimum: Optional[int] = None,
              maximum: int = MAX_ID) -> int:
    """The whole number `raw[name]` (digits in a string too). Raises FrameError."""
    value = raw.get(name)
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        value = int(value)  # the original web client sends some numbers as strings
    if not is_int(value):
        raise FrameError('{} must be a whole number'.format(name), client_id)
    if (minimum is not None and value < minimum) or value > maximum:
        raise FrameError('{} must be between {} and {}'.format(name, minimum, maximum),
                         client_id)
    return value
