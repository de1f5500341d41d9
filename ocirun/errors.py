"""One error type for everything a user can cause: the CLI prints it as one line."""


class OciError(Exception):
    """`what` names the object (a file, a JSON path, a container), `why` the reason."""

    def __init__(self, what: str, why: str, status: int = 1) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why
        self.status = status
