"""Errors the domain layer raises; each API turns them into its own wire format.

HeroPixel answers `{code, data: {}, message}`; the CAPIG API answers a GraphQL error whose
`extensions.code` is the same number.
"""


class GatewayError(Exception):
    code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GatewayError):
    code = 400


class Unauthorized(GatewayError):
    code = 401

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)


class NotFound(GatewayError):
    code = 404


class Conflict(GatewayError):
    code = 409


class PixelNotFound(NotFound):
    def __init__(self, pixel_id: int) -> None:
        super().__init__(f"Pixel {pixel_id} not found")
