//! ECDSA P-256 keys in the PEM formats cosign and OpenSSL use: the private key as PKCS#8
//! (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with PBES2 — scrypt or PBKDF2 — and AES-CBC),
//! the public key as SubjectPublicKeyInfo (`PUBLIC KEY`, cosign's `cosign.pub`).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::der::asn1::ObjectIdentifier;
use p256::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, EncryptedPrivateKeyInfo,
    LineEnding, PrivateKeyInfo,
};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{Error, Result};

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A human name for a key algorithm (and curve), for errors.
fn describe_algorithm(oid: ObjectIdentifier, curve: Option<ObjectIdentifier>) -> String {
    let curve_name = |c: ObjectIdentifier| match c.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256".to_string(),
        "1.3.132.0.34" => "P-384".to_string(),
        "1.3.132.0.35" => "P-521".to_string(),
        "1.3.132.0.10" => "secp256k1".to_string(),
        other => format!("curve {other}"),
    };
    match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => match curve {
            Some(c) => format!("an ECDSA {} key", curve_name(c)),
            None => "an EC key without a named curve".to_string(),
        },
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "an RSA key".to_string(),
        "1.3.101.112" => "an Ed25519 key".to_string(),
        "1.3.101.113" => "an Ed448 key".to_string(),
        "1.3.101.110" => "an X25519 key".to_string(),
        "1.3.101.111" => "an X448 key".to_string(),
        "1.2.840.10040.4.1" => "a DSA key".to_string(),
        other => format!("a key with algorithm {other}"),
    }
}

fn check_algorithm(path: &Path, algorithm: &AlgorithmIdentifierRef<'_>) -> Result<()> {
    let curve = algorithm.parameters_oid().ok();
    if algorithm.oid == ID_EC_PUBLIC_KEY && curve == Some(PRIME256V1) {
        return Ok(());
    }
    Err(Error::UnsupportedKey {
        path: path.to_path_buf(),
        found: describe_algorithm(algorithm.oid, curve),
    })
}

/// The PEM blocks in `text`: (label, whole block).
fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let after = &block["-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            break;
        };
        let len = end + end_marker.len();
        out.push((label, &block[..len]));
        rest = &block[len..];
    }
    out
}

/// The mode of the private key file at `path` when group or others may read or write
/// it (any of `0o077`), the condition under which ssh refuses a key: `None` for a file
/// only its owner can use, or one that cannot be inspected (the read reports that). A
/// pipe or other special file (`--sign-key <(vault read ...)`) is never reported.
pub fn exposed_key_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).ok()?;
        let mode = meta.permissions().mode();
        (meta.is_file() && mode & 0o077 != 0).then_some(mode & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn read_pem(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?);
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_string())),
        Err(_) => Err(Error::InvalidKey {
            path: path.to_path_buf(),
            expected: "PEM key",
            message: "it is not text (pack reads PEM files, not DER)".to_string(),
        }),
    }
}

fn decode_block(path: &Path, block: &str, expected: &'static str) -> Result<Zeroizing<Vec<u8>>> {
    let (_, der) =
        pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| Error::InvalidKey {
            path: path.to_path_buf(),
            expected,
            message: format!("bad PEM: {e}"),
        })?;
    Ok(Zeroizing::new(der))
}

/// The sha256 of a public key's SubjectPublicKeyInfo DER: how pack names a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The full fingerprint, `sha256:<64 hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 hex digits, for display.
    pub fn short(&self) -> &str {
        let hex = self.0.strip_prefix("sha256:").unwrap_or(&self.0);
        &hex[..hex.len().min(16)]
    }

    /// Parses `sha256:<hex>` (as found in the `dev.pack.signature.key` annotation).
    pub fn parse(value: &str) -> Option<Self> {
        let hex = value.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(value.to_ascii_lowercase()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An ECDSA P-256 private key.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public_key", &self.public_key().fingerprint())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A new random key (from the operating system's random number generator).
    pub fn generate() -> Self {
        Self {
            key: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8
    /// (`ENCRYPTED PRIVATE KEY`, PBES2 with scrypt or PBKDF2), or SEC1 (`EC PRIVATE KEY`).
    /// An encrypted key without a password fails with [`Error::PasswordRequired`].
    pub fn load(path: &Path, password: Option<&str>) -> Result<Self> {
        let text = read_pem(path)?;
        Self::from_pem(&text, password, path)
    }

    /// [`PrivateKey::load`] from PEM text; `path` names the key in errors.
    pub fn from_pem(text: &str, password: Option<&str>, path: &Path) -> Result<Self> {
        let invalid = |message: String| Error::InvalidKey {
            path: path.to_path_buf(),
            expected: "private key",
            message,
        };
        let blocks = pem_blocks(text);
        let Some((label, block)) = blocks.iter().find(|(l, _)| *l != "EC PARAMETERS") else {
            return Err(invalid("no PEM block found".to_string()));
        };
        let der = decode_block(path, block, "private key")?;
        let key = match *label {
            "ENCRYPTED PRIVATE KEY" => {
                let Some(password) = password else {
                    return Err(Error::PasswordRequired {
                        path: path.to_path_buf(),
                    });
                };
                let encrypted = EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| invalid(format!("bad encrypted PKCS#8: {e}")))?;
                let plain =
                    encrypted
                        .decrypt(password.as_bytes())
                        .map_err(|_| Error::WrongPassword {
                            path: path.to_path_buf(),
                        })?;
                pkcs8_key(path, plain.as_bytes())?
            }
            "PRIVATE KEY" => pkcs8_key(path, &der)?,
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_der(&der).map_err(|e| {
                    invalid(format!(
                        "not a P-256 SEC1 key ({e}); pack signs with ECDSA P-256 keys"
                    ))
                })?;
                SigningKey::from(secret)
            }
            "RSA PRIVATE KEY" => {
                return Err(Error::UnsupportedKey {
                    path: path.to_path_buf(),
                    found: "an RSA key".to_string(),
                });
            }
            "OPENSSH PRIVATE KEY" => {
                return Err(Error::UnsupportedKey {
                    path: path.to_path_buf(),
                    found: "an OpenSSH key".to_string(),
                });
            }
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                return Err(invalid(
                    "it is in cosign's own key format; pack reads PKCS#8 PEM keys \
                     (`pack key generate`, or `openssl pkcs8 -topk8`)"
                        .to_string(),
                ));
            }
            "PUBLIC KEY" => {
                return Err(invalid(
                    "it is a public key; signing needs the private key".to_string(),
                ));
            }
            other => return Err(invalid(format!("unexpected PEM block `{other}`"))),
        };
        Ok(Self { key })
    }

    /// The key as PKCS#8 PEM; encrypted when a password is given, with PBES2:
    /// PBKDF2-HMAC-SHA256 (600,000 iterations, 16-byte random salt) and AES-256-CBC,
    /// the scheme `openssl pkcs8 -topk8` writes, so OpenSSL reads it with its default
    /// limits (its scrypt memory limit refuses scrypt at N=2^15, r=8).
    pub fn to_pem(&self, password: Option<&str>) -> Result<Zeroizing<String>> {
        let crypto = |message: String| Error::Crypto {
            action: "encode the private key",
            message,
        };
        let secret = p256::SecretKey::from(&self.key);
        let Some(password) = password else {
            return secret
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| crypto(e.to_string()));
        };
        use rand_core::RngCore as _;
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut salt);
        rand_core::OsRng.fill_bytes(&mut iv);
        let params =
            p256::pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(600_000, &salt, &iv)
                .map_err(|e| crypto(e.to_string()))?;
        let der = secret.to_pkcs8_der().map_err(|e| crypto(e.to_string()))?;
        let info = p256::pkcs8::PrivateKeyInfo::try_from(der.as_bytes())
            .map_err(|e| crypto(e.to_string()))?;
        let encrypted = info
            .encrypt_with_params(params, password.as_bytes())
            .map_err(|e| crypto(e.to_string()))?;
        encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .map_err(|e| crypto(e.to_string()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(*self.key.verifying_key())
    }

    /// Signs `payload`: ECDSA P-256 over its SHA-256 (RFC 6979 nonces), DER-encoded.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(payload);
        signature.to_der().as_bytes().to_vec()
    }
}

fn pkcs8_key(path: &Path, der: &[u8]) -> Result<SigningKey> {
    let info = PrivateKeyInfo::try_from(der).map_err(|e| Error::InvalidKey {
        path: path.to_path_buf(),
        expected: "private key",
        message: format!("bad PKCS#8: {e}"),
    })?;
    check_algorithm(path, &info.algorithm)?;
    SigningKey::from_pkcs8_der(der).map_err(|e| Error::InvalidKey {
        path: path.to_path_buf(),
        expected: "private key",
        message: format!("bad P-256 key: {e}"),
    })
}

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    spki_der: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey")
            .field(&self.fingerprint())
            .finish()
    }
}

impl PublicKey {
    fn from_verifying_key(key: VerifyingKey) -> Self {
        let spki_der = key
            .to_public_key_der()
            .expect("a P-256 public key encodes")
            .as_bytes()
            .to_vec();
        Self { key, spki_der }
    }

    /// Reads a SubjectPublicKeyInfo PEM (`PUBLIC KEY`), the format of `cosign.pub`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_pem(path)?;
        Self::from_pem(&text, path)
    }

    /// [`PublicKey::load`] from PEM text; `path` names the key in errors.
    pub fn from_pem(text: &str, path: &Path) -> Result<Self> {
        let invalid = |message: String| Error::InvalidKey {
            path: path.to_path_buf(),
            expected: "public key",
            message,
        };
        let blocks = pem_blocks(text);
        let Some((label, block)) = blocks.first() else {
            return Err(invalid("no PEM block found".to_string()));
        };
        match *label {
            "PUBLIC KEY" => {}
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "EC PRIVATE KEY" => {
                return Err(invalid(
                    "it is a private key; pass the public key (the `.pub` file)".to_string(),
                ));
            }
            "CERTIFICATE" => {
                return Err(invalid(
                    "it is a certificate; pass the public key (`PUBLIC KEY` PEM)".to_string(),
                ));
            }
            other => return Err(invalid(format!("unexpected PEM block `{other}`"))),
        }
        let der = decode_block(path, block, "public key")?;
        let info = SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| invalid(format!("bad SubjectPublicKeyInfo: {e}")))?;
        check_algorithm(path, &info.algorithm)?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|e| invalid(format!("bad P-256 public key: {e}")))?;
        Ok(Self::from_verifying_key(key))
    }

    /// The key as SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `sha256:<hex>` of the SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(&self.spki_der))
        ))
    }

    /// Whether `signature` (DER) is this key's ECDSA P-256 SHA-256 signature of `payload`.
    pub fn verify(&self, payload: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature).is_ok_and(|sig| self.key.verify(payload, &sig).is_ok())
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// `<prefix>.key`: PKCS#8 PEM, mode 0600.
    pub private_key: PathBuf,
    /// `<prefix>.pub`: SubjectPublicKeyInfo PEM, mode 0644.
    pub public_key: PathBuf,
    /// The public key's fingerprint.
    pub fingerprint: Fingerprint,
    /// Whether the private key is encrypted.
    pub encrypted: bool,
}

/// Whether the PEM private key at `path` is encrypted.
pub fn is_encrypted(path: &Path) -> Result<bool> {
    let text = read_pem(path)?;
    Ok(pem_blocks(&text)
        .first()
        .is_some_and(|(label, _)| *label == "ENCRYPTED PRIVATE KEY"))
}

/// Generates a key pair and writes `<prefix>.key` (mode 0600; encrypted when `password`
/// is given) and `<prefix>.pub` (mode 0644). Existing files are replaced only with
/// `force`; without it, nothing is written when either exists.
pub fn generate(prefix: &Path, password: Option<&str>, force: bool) -> Result<GeneratedKey> {
    let mut private_path = prefix.as_os_str().to_owned();
    private_path.push(".key");
    let mut public_path = prefix.as_os_str().to_owned();
    public_path.push(".pub");
    let (private_path, public_path) = (PathBuf::from(private_path), PathBuf::from(public_path));
    if !force {
        for path in [&private_path, &public_path] {
            if path.symlink_metadata().is_ok() {
                return Err(Error::KeyExists { path: path.clone() });
            }
        }
    }
    let key = PrivateKey::generate();
    let private_pem = key.to_pem(password)?;
    let public = key.public_key();
    write_new(&private_path, private_pem.as_bytes(), 0o600, force)?;
    if let Err(e) = write_new(&public_path, public.to_pem().as_bytes(), 0o644, force) {
        if !force {
            let _ = fs::remove_file(&private_path);
        }
        return Err(e);
    }
    Ok(GeneratedKey {
        private_key: private_path,
        public_key: public_path,
        fingerprint: public.fingerprint(),
        encrypted: password.is_some(),
    })
}

/// Writes `path` through a temporary file with `mode`, refusing to replace an existing
/// file unless `force`.
fn write_new(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<()> {
    let written = if force {
        pack_fs::write_atomic(path, bytes, mode)
    } else {
        pack_fs::write_new(path, bytes, mode)
    };
    written.map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => Error::KeyExists {
            path: path.to_path_buf(),
        },
        _ => Error::Write {
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl genpkey -algorithm ed25519`
    const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIFUjGvClJ9+IwKvRJPp7MYc6sj66L+gil/uQ5x7hmz1S
-----END PRIVATE KEY-----
";

    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384`
    const P384: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDoD3TQi0zV4plpMR/9
+vxb9RFqrBgCjh5gDTYRqYzXXLz3rTiPeg/LqHe6O2hUTxihZANiAARcc0iQiJhB
Jg7Jx+RWwC6bx8RD8SHkgaaD30uRBJ82TN4v3Jv/F4KRc5RPkkCQsOr7Kgaq+f5l
IU4qBO2Sg7JvoSQddKxaM4fcUln7m3mOmMIf8ci0OpQUOekh2pLLSQM=
-----END PRIVATE KEY-----
";

    #[test]
    fn generate_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let generated = generate(&prefix, Some("secret"), false).unwrap();
        assert!(generated.encrypted);
        let text = fs::read_to_string(&generated.private_key).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{text}"
        );
        assert!(is_encrypted(&generated.private_key).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&generated.private_key), 0o600);
            assert_eq!(mode(&generated.public_key), 0o644);
        }

        let err = PrivateKey::load(&generated.private_key, None).unwrap_err();
        assert!(matches!(err, Error::PasswordRequired { .. }), "{err}");
        let err = PrivateKey::load(&generated.private_key, Some("wrong")).unwrap_err();
        assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
        assert!(err.to_string().contains("k.key"), "{err}");

        let key = PrivateKey::load(&generated.private_key, Some("secret")).unwrap();
        let public = PublicKey::load(&generated.public_key).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(public.fingerprint(), generated.fingerprint);
        let sig = key.sign(b"payload");
        assert!(public.verify(b"payload", &sig));
        assert!(!public.verify(b"payload!", &sig));
        assert!(!public.verify(b"payload", b"not der"));

        // Never overwritten without force.
        let err = generate(&prefix, None, false).unwrap_err();
        assert!(matches!(err, Error::KeyExists { .. }), "{err}");
        let again = generate(&prefix, None, true).unwrap();
        assert!(!again.encrypted);
        assert_ne!(again.fingerprint, generated.fingerprint);
        assert!(!is_encrypted(&again.private_key).unwrap());
        PrivateKey::load(&again.private_key, None).unwrap();
        // A password is ignored for an unencrypted key.
        PrivateKey::load(&again.private_key, Some("x")).unwrap();
    }

    #[test]
    fn unencrypted_pem_round_trips() {
        let key = PrivateKey::generate();
        let pem = key.to_pem(None).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = PrivateKey::from_pem(&pem, None, Path::new("k.key")).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let public = PublicKey::from_pem(&key.public_key().to_pem(), Path::new("k.pub")).unwrap();
        assert_eq!(public, key.public_key());
        assert_eq!(public.fingerprint().short().len(), 16);
    }

    #[test]
    fn other_keys_are_named() {
        let err = PrivateKey::from_pem(ED25519, None, Path::new("ed.key")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`ed.key` holds an Ed25519 key; pack signs with ECDSA P-256 keys"
        );
        let err = PrivateKey::from_pem(P384, None, Path::new("p384.key")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`p384.key` holds an ECDSA P-384 key; pack signs with ECDSA P-256 keys"
        );
        let err = PublicKey::from_pem(ED25519, Path::new("ed.key")).unwrap_err();
        assert!(err.to_string().contains("it is a private key"), "{err}");
        let err = PrivateKey::from_pem("hello", None, Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("no PEM block"), "{err}");
    }
}
