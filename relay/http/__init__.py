"""The HTTP edge: the acknowledgement path (`hooks`), the other endpoints (`app`), the bounded
HTTP/1.1 protocol (`protocol`), error answers (`answers`) and Tabstack streams (`streams`).
Nothing of a request travels past this package but bytes, headers and events."""
