"""What a connection presents to the broker: a Credentials provider mints (username, password).

Kept apart from tether.creds (key and certificate loading) so that a cloud whose password is
a token (SAS, JWT) imports these few lines, not the file and PEM machinery. tether.creds
re-exports both names.

    creds = StaticCredentials("device-1", "secret")
    user, password = creds.mint(now)       # now: int Unix seconds
    creds.expires_at                       # None: never; else Unix seconds

The cloud base calls mint() before every connect and plans a reconnect before expires_at,
timed on ticks from the mint (not on the wall clock, which may jump).
"""


class Credentials:
    """Base of every provider. Subclasses set needs_time when minting needs a sane wall
    clock (a token with an expiry), and set expires_at in mint()."""

    needs_time = False  # True: the client waits for the clock before minting
    expires_at = None  # Unix seconds when the last minted password stops working

    def mint(self, now):
        """(username, password) for a connection made at `now` (int Unix seconds).

        Sets expires_at (None = never). Raises tether.errors.CredentialError when it cannot.
        """
        raise NotImplementedError


class StaticCredentials(Credentials):
    """A fixed username and password (or None for either): never expires."""

    def __init__(self, username, password=None):
        self.username = username
        self._password = password  # private: never in a repr, log line or message

    def mint(self, now):
        self.expires_at = None
        return self.username, self._password
