"""Adapters: the platform's own interfaces over network libraries (SNMP, ICMP); library types stay inside."""
