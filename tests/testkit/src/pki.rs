//! A throwaway PKI for TLS tests: one CA that everything trusts, a second CA that
//! nothing trusts, and a certificate for each way a handshake can go wrong.
//!
//! The same files serve the testkit's HTTPS upstreams, the RabbitMQ TLS listener and
//! every language's client tests, so they are written as plain PEM files to one
//! directory that any tool can read. The broken certificates have fixed dates far
//! in the past or future, so they stay broken whenever the directory is reused.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// The CA whose certificate clients and servers are told to trust.
const CA: &str = "ca";
/// A CA nobody trusts, for certificates that look fine but chain to the wrong root.
const OTHER_CA: &str = "other-ca";

type Date = (i32, u8, u8);

/// Valid until long after anyone runs these tests, and since well before the clocks
/// of any machine that could.
const VALID: (Date, Date) = ((2020, 1, 1), (2099, 1, 1));
const EXPIRED: (Date, Date) = ((2000, 1, 1), (2001, 1, 1));
const NOT_YET_VALID: (Date, Date) = ((2090, 1, 1), (2099, 1, 1));

/// The SANs a correct server certificate has: clients connect to `https://127.0.0.1:port`
/// or `https://localhost:port`.
const SERVER_SANS: &[&str] = &["localhost", "127.0.0.1"];

/// The extended key usage, as a plain enum because rcgen's has a destructor, which a
/// `const` table cannot hold.
#[derive(Clone, Copy)]
enum Usage {
    ServerAuth,
    ClientAuth,
}

/// One end-entity certificate and the fault it stands for.
struct Leaf {
    name: &'static str,
    common_name: &'static str,
    sans: &'static [&'static str],
    usage: Usage,
    validity: (Date, Date),
    issuer: &'static str,
}

const fn server(name: &'static str, sans: &'static [&'static str]) -> Leaf {
    Leaf {
        name,
        common_name: "localhost",
        sans,
        usage: Usage::ServerAuth,
        validity: VALID,
        issuer: CA,
    }
}

/// RabbitMQ maps a client certificate to a user by its CN, so the CN is the user name.
const fn client(name: &'static str, common_name: &'static str) -> Leaf {
    Leaf {
        name,
        common_name,
        sans: &[],
        usage: Usage::ClientAuth,
        validity: VALID,
        issuer: CA,
    }
}

const LEAVES: [Leaf; 10] = [
    server("server", SERVER_SANS),
    Leaf {
        validity: EXPIRED,
        ..server("server-expired", SERVER_SANS)
    },
    server("server-wrong-san", &["wrong.example"]),
    Leaf {
        issuer: OTHER_CA,
        ..server("server-other-ca", SERVER_SANS)
    },
    client("client", "courier-client"),
    Leaf {
        validity: EXPIRED,
        ..client("client-expired", "courier-client")
    },
    Leaf {
        validity: NOT_YET_VALID,
        ..client("client-not-yet-valid", "courier-client")
    },
    Leaf {
        issuer: OTHER_CA,
        ..client("client-other-ca", "courier-client")
    },
    Leaf {
        usage: Usage::ServerAuth,
        ..client("client-no-clientauth", "courier-client")
    },
    // Valid and trusted, but the broker has no such user: authentication, not the
    // handshake, must be what fails.
    client("client-unknown-user", "courier-nobody"),
];

/// Certificates and keys as PEM text, by name.
///
/// Names (each is also a file stem in the directory: `NAME.pem`, and `NAME.key` for
/// the private keys, PKCS#8):
///
/// - `ca`: the trusted root; `other-ca`: an untrusted one. No keys: nothing signs
///   after generation.
/// - `server`: SANs `localhost` and `127.0.0.1`, for serverAuth.
/// - `server-expired` (2000 to 2001), `server-wrong-san` (only `wrong.example`),
///   `server-other-ca` (issued by `other-ca`).
/// - `client`: CN `courier-client`, for clientAuth.
/// - `client-expired` (2000 to 2001), `client-not-yet-valid` (2090 to 2099),
///   `client-other-ca` (issued by `other-ca`), `client-no-clientauth` (serverAuth
///   only), all CN `courier-client`; `client-unknown-user`: valid, CN `courier-nobody`.
///
/// Keys are ECDSA P-256, which is quick to generate and every TLS stack accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pki {
    certs: BTreeMap<&'static str, String>,
    keys: BTreeMap<&'static str, String>,
}

impl Pki {
    /// A fresh PKI, in memory only.
    pub fn generate() -> Pki {
        let mut certs = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let issuers: BTreeMap<&str, Issuer<'static, KeyPair>> =
            [(CA, "courier test CA"), (OTHER_CA, "other CA")]
                .into_iter()
                .map(|(name, common)| {
                    let (pem, issuer) = certificate_authority(common);
                    certs.insert(name, pem);
                    (name, issuer)
                })
                .collect();
        for leaf in &LEAVES {
            let key = new_key();
            let cert = leaf
                .params()
                .signed_by(&key, &issuers[leaf.issuer])
                .expect("rcgen signs fixed, valid parameters");
            certs.insert(leaf.name, cert.pem());
            keys.insert(leaf.name, key.serialize_pem());
        }
        Pki { certs, keys }
    }

    /// Writes every file into `dir`, creating it if needed. `ca.pem` comes last so
    /// that its presence means the set is complete (see [`load_or_generate`](Self::load_or_generate)).
    pub fn write(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir)?;
        for (name, key) in &self.keys {
            fs::write(dir.join(format!("{name}.key")), key)?;
        }
        for (name, cert) in self.certs.iter().filter(|(name, _)| **name != CA) {
            fs::write(dir.join(format!("{name}.pem")), cert)?;
        }
        fs::write(dir.join(format!("{CA}.pem")), &self.certs[CA])
    }

    /// Reads a directory that [`write`](Self::write) filled; fails if any file is missing.
    pub fn load(dir: impl AsRef<Path>) -> io::Result<Pki> {
        let dir = dir.as_ref();
        let read = |file: String| {
            let path = dir.join(file);
            fs::read_to_string(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let mut certs = BTreeMap::new();
        for name in [CA, OTHER_CA]
            .into_iter()
            .chain(LEAVES.iter().map(|l| l.name))
        {
            certs.insert(name, read(format!("{name}.pem"))?);
        }
        let mut keys = BTreeMap::new();
        for leaf in &LEAVES {
            keys.insert(leaf.name, read(format!("{}.key", leaf.name))?);
        }
        Ok(Pki { certs, keys })
    }

    /// Loads `dir` if it holds a PKI, else generates one there.
    ///
    /// Test processes started in parallel may all find `dir` empty. Each then generates
    /// into a private sibling directory and renames it into place, which only the first
    /// can do while `dir` is non-empty, so they all end up using one consistent set
    /// instead of files mixed from several.
    pub fn load_or_generate(dir: impl AsRef<Path>) -> io::Result<Pki> {
        let dir = dir.as_ref();
        if dir.join(format!("{CA}.pem")).exists() {
            return Pki::load(dir);
        }
        let pki = Pki::generate();
        let parent = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".courier-pki-")
            .tempdir_in(parent)?;
        pki.write(staging.path())?;
        // Renaming onto an empty directory replaces it; onto a non-empty one it fails.
        if fs::rename(staging.path(), dir).is_ok() {
            return Ok(pki);
        }
        if dir.join(format!("{CA}.pem")).exists() {
            // Another process got there first: use its files so everyone agrees.
            return Pki::load(dir);
        }
        // A directory with unrelated files in it: the set cannot be swapped in whole.
        pki.write(dir)?;
        Ok(pki)
    }

    /// The certificate `name` (see the list on [`Pki`]) as PEM.
    ///
    /// # Panics
    ///
    /// If there is no certificate `name`.
    pub fn pem(&self, name: &str) -> &str {
        self.certs
            .get(name)
            .unwrap_or_else(|| panic!("no certificate {name:?}; there are {:?}", self.certs.keys()))
    }

    /// The private key of certificate `name` as PKCS#8 PEM.
    ///
    /// # Panics
    ///
    /// If there is no key `name`, which includes the two CAs.
    pub fn key(&self, name: &str) -> &str {
        self.keys
            .get(name)
            .unwrap_or_else(|| panic!("no key {name:?}; there are {:?}", self.keys.keys()))
    }
}

impl Leaf {
    fn params(&self) -> CertificateParams {
        let sans: Vec<String> = self.sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("fixed SANs are valid");
        params.distinguished_name = common_name(self.common_name);
        let ((y0, m0, d0), (y1, m1, d1)) = self.validity;
        params.not_before = date_time_ymd(y0, m0, d0);
        params.not_after = date_time_ymd(y1, m1, d1);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match self.usage {
            Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params
    }
}

fn certificate_authority(common: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(common);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Wider than every certificate it signs, so only the leaf's own dates decide.
    params.not_before = date_time_ymd(1999, 1, 1);
    params.not_after = date_time_ymd(2100, 1, 1);
    let key = new_key();
    let cert = params
        .self_signed(&key)
        .expect("rcgen signs fixed, valid parameters");
    (cert.pem(), Issuer::new(params, key))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn new_key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ring generates P-256 keys")
}
