"""Operating relay: the running services and their reload (`services`), reloading on a file
change (`watch`) and keeping the garbage collector's full passes short (`heap`)."""
