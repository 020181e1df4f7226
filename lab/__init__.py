"""The lab: stand-ins for the outside world (a Proxmox VE API, exchanges) on one machine.

Nothing here imports the rest of QuantShift; clients reach the lab only over HTTP.
"""
