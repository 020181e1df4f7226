"""Provisioning of QuantShift's Proxmox LXC containers from a declarative spec, over the Proxmox VE API."""
