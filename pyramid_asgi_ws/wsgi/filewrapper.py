"""The ``wsgi.file_wrapper`` the bridge offers applications."""

import typing

#: The ASGI extension that sends a file without copying it through Python.
ZEROCOPY = 'http.response.zerocopysend'


class FileWrapper:
    """The ``wsgi.file_wrapper``: iterates over ``filelike`` in blocks of
    ``block_size`` bytes, or lets the bridge hand the file to the server's
    ``http.response.zerocopysend`` extension when it has one.

    As in :pep:`3333`'s reference, ``iter()`` returns the wrapper itself,
    so middleware that wraps the iterable (WebOb does for every ``Range:``
    request) still holds the object whose :meth:`close` closes the file.
    """

    def __init__(self, filelike: typing.Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> 'FileWrapper':
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.block_size)
        if not data:
            raise StopIteration
        return data

    def close(self) -> None:
        """Close the file, if it can be closed."""
        close = getattr(self.filelike, 'close', None)
        if close is not None:
            close()

    def fileno(self) -> int | None:
        """The file descriptor, or ``None`` when the file has none."""
        try:
            return int(self.filelike.fileno())
        except (AttributeError, OSError, ValueError):
            return None
