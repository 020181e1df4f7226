"""Mitogen's linear strategy, found from the Python that runs Ansible (ansible.cfg names no venv path).

Where Mitogen is not installed, Ansible's own linear strategy runs instead, with one warning: every play
still works, only slower per task over SSH.
"""

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError:
    from ansible.plugins.strategy.linear import StrategyModule
    from ansible.utils.display import Display

    Display().warning("Mitogen is not installed for this Python: running the playbooks with Ansible's linear strategy")

__all__ = ["StrategyModule"]
