"""LDAP / Active Directory directory sync: client, translation of entries, synchronizers."""
