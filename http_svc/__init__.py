"""im-http: the public HTTP gateway of the chat backend."""
