"""`make bench`: run every benchmark, record results/*.json and bench/RESULTS.md."""

from __future__ import annotations

from bench import bot, common, demo, fence, guard, lab_api, pipeline, provision, replay, roles


def main() -> None:
    lab_api.main()
    provision.main()
    bot.main()
    fence.main()
    replay.main()
    roles.main()
    pipeline.main()
    guard.main()
    demo.main()
    print(common.write_markdown())


if __name__ == "__main__":
    main()
