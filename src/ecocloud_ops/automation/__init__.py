"""Automation: Ansible playbook runs through ansible-runner (catalog, runs, events, cancel, timeout)."""
