"""Real directory servers for tests: OpenLDAP ``slapd`` started on a free loopback port.

``TestSlapd`` builds on python-ldap's ``slapdtest.SlapdObject`` (it writes a cn=config database with
``slapadd``, starts ``slapd -d 0`` on ``ldap://127.0.0.1:<free port>`` plus an ``ldapi://`` socket
and stops it by pid). On top of it:

* the schemas a directory sync meets: core, cosine, inetorgperson, nis, and Microsoft's ``msuser``
  for AD-style entries (sAMAccountName, userAccountControl, objectGUID, accountExpires);
* the ``memberof`` overlay (``memberOf`` kept up to date on users) and ``refint`` (renaming or
  deleting a user fixes group ``member`` values), as a production OpenLDAP is usually set up;
* LDAPS on a second free port and StartTLS on the plain one, with a certificate from
  ``make_test_pki`` (a CA made per test session; pass ``server_names`` without ``127.0.0.1`` to
  get a name mismatch) or, without ``pki``, the one that ships with ``slapdtest``.

Use one server per test module (``slapd_server`` fixture in ``tests/provisioning/conftest.py``) and a
fresh organizational unit per test (``server.fresh_ou()``): starting slapd costs about a second.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from slapdtest import SlapdObject

# msuser and the memberof overlay both define ``memberOf``; the AD-style schema is loaded only on
# servers that do not run the overlay (``TestSlapd(ad_schema=True)``).
_OVERLAYS = """
dn: cn=module{1},cn=config
objectClass: olcModuleList
cn: module{1}
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: ppolicy

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: member
"""

_ou_counter = itertools.count(1)


@dataclass(frozen=True)
class TestPki:
    """Files of a throwaway PKI: a CA, a server certificate it signed, and an unrelated CA."""

    __test__ = False

    ca_file: str
    other_ca_file: str
    server_cert: str
    server_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_test_pki(directory: str | Path, *, server_names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> TestPki:
    """Write a CA, a server certificate for ``server_names`` (DNS names or IPs) and a second CA."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("idm test CA")
    _other_key, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in server_names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(server_names[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = TestPki(
        ca_file=str(directory / "ca.pem"), other_ca_file=str(directory / "other-ca.pem"),
        server_cert=str(directory / "server.pem"), server_key=str(directory / "server.key"),
    )
    Path(paths.ca_file).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.other_ca_file).write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.server_cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.server_key).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(paths.server_key, 0o600)
    return paths


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestSlapd(SlapdObject):
    """A throwaway slapd with overlays, extra schemas and LDAPS (see the module docstring)."""

    __test__ = False  # not a test class, despite the name

    suffix = "dc=example,dc=org"
    root_cn = "admin"
    root_pw = "admin-secret"  # noqa: S105 - a throwaway test directory
    slapd_loglevel = "0"

    def __init__(self, *, ad_schema: bool = False, pki: TestPki | None = None, preload: str | Path | None = None):
        self.TMPDIR = tempfile.gettempdir()
        self.ad_schema = ad_schema
        self.preload = preload
        schemas = ["core.ldif", "cosine.ldif", "inetorgperson.ldif", "nis.ldif"]
        if ad_schema:
            schemas.append("msuser.ldif")
        self.openldap_schema_files = tuple(schemas)
        super().__init__()
        if pki is not None:
            self.cafile, self.servercert, self.serverkey = pki.ca_file, pki.server_cert, pki.server_key
        self.ldaps_port = free_port()
        self.ldaps_uri = f"ldaps://127.0.0.1:{self.ldaps_port}/"

    def gen_config(self) -> str:
        config = super().gen_config()
        # slapadd numbers the entries as it writes them: the mdb database becomes {1}mdb.
        config = config.replace("olcDatabase=mdb,cn=config", "olcDatabase={1}mdb,cn=config")
        config = config.replace("olcDatabase: mdb", "olcDatabase: {1}mdb")
        config = config.replace("cn=module,cn=config", "cn=module{0},cn=config").replace(
            "cn: module\n", "cn: module{0}\n"
        )
        # The mdb map is 10 MiB by default: too small for the 100k-user benchmark directory (slapadd
        # fails with MDB_MAP_FULL). The map is sparse, so a large limit costs nothing until used.
        config += "olcDbMaxSize: 4294967296\n"
        # Let anyone bound read everything (sync accounts are plain users in these tests).
        config += "olcAccess: {0}to * by * read\n"
        return config

    def _write_config(self):
        super()._write_config()
        # Overlays name schema attributes (member), so they go in after the schemas.
        if not self.ad_schema:
            self.slapadd(_OVERLAYS, ["-n0"])
        # The suffix entry, then any bulk data, loaded offline (slapadd -q is ~50x faster than ldapadd;
        # it does not run overlays, so preloaded users get no memberOf — group member values are kept).
        self.slapadd(f"dn: {self.suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
                     "o: Example\n", ["-n1", "-q"])
        if self.preload:
            self.slapadd(None, ["-n1", "-q", "-l", str(self.preload)])

    def _start_slapd(self):
        # Also listen on LDAPS: slapdtest only opens ldap:// and ldapi://.
        original = self.ldapi_uri
        self.ldapi_uri = f"{original} {self.ldaps_uri}" if original else self.ldaps_uri
        try:
            super()._start_slapd()
        finally:
            self.ldapi_uri = original

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """Stop slapd abruptly (SIGKILL), as a crash or a lost network would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def fresh_ou(self, name: str | None = None) -> str:
        """Create ``ou=<name>`` under the suffix (a unique name by default) and return its DN."""
        name = name or f"t{os.getpid()}-{next(_ou_counter)}"
        dn = f"ou={name},{self.suffix}"
        self.ldapadd(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n")
        return dn


class SambaDomain:
    """A real Active Directory domain controller (Samba 4) serving LDAP on 127.0.0.1:389 and 636.

    Provisioning a domain takes half a minute, so one provisioned domain is kept as a template per
    machine and Samba version (``template_root``) and each ``SambaDomain`` runs on a copy of it. Samba
    has no setting for its LDAP port, so the DC listens on the standard ports of 127.0.0.1 and a file
    lock lets one test process at a time use them (the SQLite and PostgreSQL runs go side by side).
    Samba runs in the foreground (``samba -i``) with only its LDAP service and is stopped by pid.
    Entries are added with ``samba-tool`` on the copy's database, as an AD admin would.
    """

    realm = "IDM.TEST"
    domain = "IDMTEST"
    base_dn = "DC=idm,DC=test"
    admin_password = "Adm1n-Pass-123!"  # noqa: S105 - a throwaway test domain
    bind_dn = "Administrator@idm.test"
    ldap_uri = "ldap://127.0.0.1:389/"
    ldaps_uri = "ldaps://127.0.0.1:636/"

    def __init__(self, workdir: str | Path, *, template_root: str | Path | None = None):
        self.workdir = Path(workdir)
        self.template_root = Path(template_root or Path(tempfile.gettempdir()) / f"idm-samba-{os.getuid()}")
        self._proc: subprocess.Popen | None = None
        self._lock_file = None

    @staticmethod
    def available() -> bool:
        return shutil.which("samba") is not None and shutil.which("samba-tool") is not None

    def _template(self) -> Path:
        version = subprocess.run(["samba", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        template = self.template_root / version.replace(" ", "_")
        if (template / "etc" / "smb.conf").exists():
            return template
        staging = self.template_root / f"staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            ["samba-tool", "domain", "provision", f"--realm={self.realm}", f"--domain={self.domain}",
             "--server-role=dc", "--dns-backend=NONE", f"--adminpass={self.admin_password}",
             f"--targetdir={staging}", "--host-ip=127.0.0.1", "--host-name=dc1",
             "--option=interfaces=127.0.0.1", "--option=bind interfaces only=yes"],
            capture_output=True, check=True, timeout=300,
        )
        conf = staging / "etc" / "smb.conf"
        conf.write_text(conf.read_text().replace(str(staging), str(template)))
        try:
            staging.rename(template)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
        return template

    def start(self) -> None:
        import fcntl

        template = self._template()
        self.template_root.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.template_root / "ports.lock", "w")  # noqa: SIM115 - held until stop()
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.copytree(template, self.workdir, symlinks=True)
        conf = self.workdir / "etc" / "smb.conf"
        text = conf.read_text().replace(str(template), str(self.workdir))
        text = re.sub(r"\n\tserver services = [^\n]*", "", text)
        text = text.replace("[global]\n", "[global]\n\tserver services = ldap\n"
                            "\tldap server require strong auth = no\n\tlog level = 0\n", 1)
        conf.write_text(text)
        self.smb_conf = str(conf)
        self._proc = subprocess.Popen(
            ["samba", "-i", "-M", "single", "-s", self.smb_conf],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                raise RuntimeError("samba exited during start-up")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", 389)) == 0:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("samba did not open its LDAP port within 60 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def tool(self, *args: str) -> str:
        """Run ``samba-tool ARGS`` against this domain's database; return its output."""
        result = subprocess.run(["samba-tool", *args, "-s", self.smb_conf], capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"samba-tool {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout
