"""A note: a line of text someone wrote, with where it came from."""

from datetime import datetime, timezone

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base
from .user import User

MAX_TEXT = 500


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Note(Base):
    __tablename__ = 'notes'

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(MAX_TEXT))
    #: 'form' or 'socket'
    via: Mapped[str] = mapped_column(String(10))
    created: Mapped[datetime] = mapped_column(default=_now)
    author_id: Mapped[int] = mapped_column(ForeignKey('users.id'))
    author: Mapped[User] = relationship()

    def as_message(self) -> dict:
        """What the sockets are told about this note."""
        return {
            'type': 'note',
            'id': self.id,
            'author': self.author.name,
            'text': self.text,
            'via': self.via,
        }
