"""What stands behind the lab's Proxmox API: records in memory (`memory`) or real LXC containers (`lxc`),
both behind `base.Backend`."""
