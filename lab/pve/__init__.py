"""A Proxmox-VE-8-compatible HTTPS API: the routes (`api`), the schema checks (`schema`), tokens and
tickets (`auth`), the guests' records (`store`); `python -m lab.pve` serves it (`server`)."""
