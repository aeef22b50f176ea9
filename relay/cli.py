"""The `relay` command line: parses arguments, calls the library, prints, sets the exit code.

relay serve  --config FILE            run the HTTP service (--host, --port)
relay check  --config FILE            validate config, render every template on the samples
relay render --config FILE EVENT      print, as JSON, what would be posted where
relay routes --config FILE EVENT      which rules match an event and why, and where it goes
relay migrate [--config FILE]         create or upgrade the schema of RELAY_DATABASE_URL
relay outbox [--config FILE]          pending / in flight / dead / sent / muted / waiting for a
                                      digest / oldest age per destination (every configured
                                      one, given a config); events not yet routed
relay dead list|replay|drop [--config FILE] ...   inspect and act on dead letters
relay silence add|list|expire ...     silences: hold back matching events' messages for a while
relay send SAMPLE|FILE --url URL [--config FILE]  sign a sample event as its platform would
                                      and post it to a running relay (try a deployment)

Every command takes `--config FILE`, by default `$RELAY_CONFIG`. The store commands (migrate,
outbox, dead, silence) work without one; a config they are given is validated as `relay serve`
would, and refused with its problems if it is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from relay.config import LoadedConfig, load_config
from relay.delivery.destinations import describe, native
from relay.errors import ConfigError, IngestError
from relay.event import Event
from relay.ops import silence_command
from relay.planning import plan
from relay.records import Status
from relay.runtime import Runtime, build_runtime
from relay.samples import events_from_file
from relay.store import Store, open_store
from relay.trace import explain


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("RELAY_CONFIG"),
        help="YAML config file (default: $RELAY_CONFIG)",
    )


def _load(args: argparse.Namespace) -> LoadedConfig:
    if not args.config:
        raise ConfigError(["no config file: pass --config FILE or set RELAY_CONFIG"])
    return load_config(args.config)


def _given(args: argparse.Namespace) -> Runtime | None:
    """The config a store command was given, if any, checked as `relay serve` would check it."""
    return build_runtime(_load(args)) if args.config else None


def cmd_serve(args: argparse.Namespace) -> int:
    from relay.config import secret_values
    from relay.logs import protect, setup_logging
    from relay.server import serve

    setup_logging(args.log_level)
    protect(_environment_secrets(os.environ))
    loaded = _load(args)
    protect(secret_values(loaded.config))
    serve(loaded, args.host, args.port)
    return 0


def _environment_secrets(env: Mapping[str, str]) -> list[str]:
    """Secrets that reach relay outside the config: the admin token, the database password."""
    found = [env.get("RELAY_ADMIN_TOKEN", "")]
    password = re.match(r"^[a-z]+://[^:/@]+:([^@]+)@", env.get("RELAY_DATABASE_URL", ""))
    if password:
        found.append(password.group(1))
    return found


def cmd_check(args: argparse.Namespace) -> int:
    from relay.ops.check import check

    loaded = _load(args)
    report = check(build_runtime(loaded))
    for line in report.warnings:
        print(f"warning: {line}")
    for line in report.notes:
        print(f"note: {line}")
    for line in report.errors:
        print(f"error: {line}")
    if report.errors:
        return 1
    print(
        f"ok: {loaded.path} ({len(loaded.config.sources)} sources, "
        f"{len(loaded.config.destinations)} destinations, {len(loaded.config.routes)} routes)"
    )
    return 0


def _plan_json(runtime: Runtime, event: Event) -> dict[str, Any]:
    planned = plan(runtime, event)
    dests = runtime.config.destinations
    return {
        "event": {"source": event.source, "id": event.id, "type": event.type},
        "dropped_by": planned.decision.dropped_by,
        "messages": [
            {
                "destination": m.destination,
                "to": describe(dests[m.destination], runtime.dry_run),
                "route": route,
                "template": m.template,
                **({"conversation": m.step.to_json()} if m.step else {}),
                **({"muted": True} if m.muted else {}),
                **({"digest_group": m.group.key} if m.group else {}),
                # as the destination's chat is sent it, and the chat-neutral message it came from
                "payload": native(dests[m.destination], m.message),
                "message": m.message.to_json(),
            }
            for m, route in zip(planned.messages, planned.routes, strict=True)
        ],
        "template_errors": list(planned.template_errors),
    }


def cmd_render(args: argparse.Namespace) -> int:
    runtime = build_runtime(_load(args))
    events = events_from_file(runtime, Path(args.event), args.source)
    out = [_plan_json(runtime, e) for e in events]
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2, ensure_ascii=False))
    return 0


def cmd_routes(args: argparse.Namespace) -> int:
    runtime = build_runtime(_load(args))
    for event in events_from_file(runtime, Path(args.event), args.source):
        print("\n".join(explain(runtime, event)))
    return 0


def _store(args: argparse.Namespace) -> Store:
    return open_store(os.environ.get("RELAY_DATABASE_URL"), Path.cwd())


async def _with_store(args: argparse.Namespace, action: Any) -> int:
    store = _store(args)
    await store.open()
    try:
        result: int = await action(store)
        return result
    finally:
        await store.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema up to date (relay serve also does this at start-up)."""

    _given(args)  # a release step that migrates also refuses a config relay would not serve

    async def show(store: Store) -> int:
        print(f"ok: {store!r} is at schema version {await store.migrate()}")
        return 0

    return asyncio.run(_with_store(args, show))


def cmd_outbox(args: argparse.Namespace) -> int:
    runtime = _given(args)

    async def show(store: Store) -> int:
        from relay.ops.backlog import backlog

        now = time.time()
        # a configured destination with nothing stored yet shows zeros
        found = await backlog(store, runtime.config.destinations if runtime else ())
        stats, inbox = found.destinations, found.inbox
        print(
            f"{'destination':<24}{'pending':>9}{'inflight':>10}{'dead':>7}{'sent':>8}"
            f"{'muted':>7}{'silenced':>9}{'digest':>8}  oldest"
        )
        for s in stats:
            age = f"{now - s.oldest_pending_at:.0f}s" if s.oldest_pending_at else "-"
            print(
                f"{s.destination:<24}{s.pending:>9}{s.inflight:>10}{s.dead:>7}{s.sent:>8}"
                f"{s.muted:>7}{s.silenced:>9}{s.digesting:>8}  {age}"
            )
        if not stats:
            print("(outbox is empty)")
        if inbox.waiting:
            age = f", oldest {now - inbox.oldest_at:.0f}s" if inbox.oldest_at else ""
            print(f"accepted, waiting to be routed and rendered: {inbox.waiting}{age}")
        return 0

    return asyncio.run(_with_store(args, show))


def cmd_dead(args: argparse.Namespace) -> int:
    ids = None if args.all else [int(i) for i in args.ids]
    if args.action in ("replay", "drop") and not args.all and not args.ids:
        print("error: name dead letter IDs or pass --all", file=sys.stderr)
        return 2
    _given(args)

    async def act(store: Store) -> int:
        if args.action == "list":
            for row in await store.rows(Status.DEAD):
                print(
                    json.dumps(
                        {
                            "id": row.id,
                            "destination": row.destination,
                            "event_id": row.event_id,
                            "event_type": row.event_type,
                            "attempts": row.attempts,
                            "reason": row.last_reason,
                            "error": row.last_error,
                        }
                    )
                )
            return 0
        if args.action == "replay":
            count = await store.replay_dead(ids, time.time())
            print(f"replayed {count} dead letter(s); a running relay delivers them within a second")
        else:
            count = await store.drop_dead(ids)
            print(f"dropped {count} dead letter(s)")
        return 0

    return asyncio.run(_with_store(args, act))


def cmd_silence(args: argparse.Namespace) -> int:
    names = list(r.config.destinations) if (r := _given(args)) is not None else None
    return asyncio.run(_with_store(args, lambda store: silence_command.run(store, args, names)))


def cmd_send(args: argparse.Namespace) -> int:
    from relay.ops.send import build_request, choose_source, find_event, post

    path = find_event(args.event)
    config = _load(args).config
    source = choose_source(config, path, path.read_bytes(), args.source)
    request = build_request(config, source, path, time.time(), keep_id=args.keep_id)
    answer = post(request, args.url)
    if answer.status is not None:
        print(f"{answer.status} {path.name} -> {answer.url} (id {request.event_id}): {answer.text}")
    if answer.problem is not None:
        print(f"error: {answer.problem}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="relay", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    _config_arg(serve)
    serve.add_argument(
        "--host",
        default=os.environ.get("HOST", "0.0.0.0"),
        help="address to listen on (default: $HOST, else 0.0.0.0)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8080")),
        help="port to listen on (default: $PORT, else 8080)",
    )
    serve.add_argument(
        "--log-level",
        default=os.environ.get("RELAY_LOG_LEVEL", "info"),
        help="debug, info, warning or error (default: $RELAY_LOG_LEVEL, else info)",
    )
    serve.set_defaults(fn=cmd_serve)

    check = sub.add_parser("check", help="validate config and templates")
    _config_arg(check)
    check.set_defaults(fn=cmd_check)

    render = sub.add_parser("render", help="print what an event would post where")
    _config_arg(render)
    render.add_argument("event", help="event JSON file (or a Tabstack .sse stream)")
    render.add_argument("--source", help="configured source name (guessed from the file if absent)")
    render.set_defaults(fn=cmd_render)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    _config_arg(migrate)
    migrate.set_defaults(fn=cmd_migrate)

    routes = sub.add_parser("routes", help="explain which routes an event matches and why")
    _config_arg(routes)
    routes.add_argument("event", help="event JSON file (or a Tabstack .sse stream)")
    routes.add_argument("--source", help="configured source name (guessed from the file if absent)")
    routes.set_defaults(fn=cmd_routes)

    outbox = sub.add_parser("outbox", help="outbox depth and age per destination")
    _config_arg(outbox)
    outbox.set_defaults(fn=cmd_outbox)

    dead = sub.add_parser("dead", help="dead letters: list, replay, drop")
    dead.add_argument("action", choices=["list", "replay", "drop"])
    dead.add_argument("ids", nargs="*", help="dead letter IDs")
    dead.add_argument("--all", action="store_true", help="every dead letter")
    _config_arg(dead)
    dead.set_defaults(fn=cmd_dead)

    silence = sub.add_parser("silence", help="silences: add, list, expire")
    _config_arg(silence)
    silence_command.arguments(silence, cmd_silence)

    from relay.ops.send import sample_names

    send = sub.add_parser(
        "send",
        help="sign a sample event (or a file) and post it to a running relay",
        epilog="samples: " + ", ".join(sample_names()),
    )
    send.add_argument("event", metavar="SAMPLE|FILE", help="a sample's name or an event file")
    send.add_argument(
        "--url",
        default=os.environ.get("RELAY_URL", "http://localhost:8080"),
        help="relay's base URL (default: $RELAY_URL, else http://localhost:8080)",
    )
    send.add_argument("--source", help="configured source name (by the event's platform if absent)")
    send.add_argument(
        "--keep-id", action="store_true", help="send the event's own id (a resend is a duplicate)"
    )
    _config_arg(send)
    send.set_defaults(fn=cmd_send)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.fn(args)
        return code
    except ConfigError as exc:
        # the operator's terminal sees the values (`${VAR}` for those from the environment);
        # `relay serve` writes to the service's log, which gets the public form, as every log
        lines = exc.public if args.command == "serve" else exc.detailed
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        return 1
    except IngestError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
