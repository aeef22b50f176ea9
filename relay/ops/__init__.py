"""Operating relay: the running services and their reload (`services`), reloading on a file
change (`watch`)."""
