"""End to end: real server processes (and real services) driven over sockets by real clients."""
