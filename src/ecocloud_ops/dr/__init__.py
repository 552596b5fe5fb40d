"""Disaster recovery: data centers, protected services, drill plans and drill runs with measured RTO/RPO."""
