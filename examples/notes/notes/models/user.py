"""Who may write notes."""

import hashlib
import hmac
import os

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base

ITERATIONS = 200_000


def _digest(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac(
        'sha256', password.encode('utf-8'), salt, ITERATIONS
    )


class User(Base):
    __tablename__ = 'users'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))

    def set_password(self, password: str) -> None:
        salt = os.urandom(16)
        self.password_hash = salt.hex() + ':' + _digest(password, salt).hex()

    def check_password(self, password: str) -> bool:
        salt, _, digest = self.password_hash.partition(':')
        expected = bytes.fromhex(digest)
        return hmac.compare_digest(
            _digest(password, bytes.fromhex(salt)), expected
        )
