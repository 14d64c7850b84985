//! `pack key`: signing keys.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use pack_packager::signing;
use zeroize::Zeroizing;

use crate::exit::Status;
use crate::keys::PASSWORD_ENV;
use crate::printer::{BOLD, GREEN, Printer};

/// Manage the ECDSA P-256 keys `pack sign` and `pack verify` use.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack key generate
  PACK_KEY_PASSWORD=... pack key generate --output-prefix keys/release
  pack key generate --no-password --output-prefix ci --force

Exit status:
  0  success
  2  usage error, a file that already exists, or no password available")]
pub struct KeyCommand {
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyAction {
    /// Generate a key pair: `<PREFIX>.key` (PKCS#8 PEM, mode 0600, encrypted with a
    /// password) and `<PREFIX>.pub` (SubjectPublicKeyInfo PEM, mode 0644, the format of
    /// cosign's `cosign.pub`).
    ///
    /// The password comes from PACK_KEY_PASSWORD, or is asked for when stdin is a
    /// terminal. The private key is encrypted with PBES2 (scrypt, AES-256-CBC), which
    /// OpenSSL reads too.
    Generate(GenerateArgs),
}

/// `pack key generate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack key generate                                   # pack.key and pack.pub
  PACK_KEY_PASSWORD=... pack key generate --output-prefix keys/release
  pack key generate --no-password --output-prefix ci --force

Exit status:
  0  both files were written
  2  a file that already exists (without --force), no password available, or a file
     that cannot be written")]
pub struct GenerateArgs {
    /// Write `<PREFIX>.key` and `<PREFIX>.pub`.
    #[arg(long, value_name = "PREFIX", default_value = "pack")]
    pub output_prefix: PathBuf,

    /// Write the private key unencrypted (anyone who can read it can sign).
    #[arg(long)]
    pub no_password: bool,

    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Generated<'a> {
    private_key: &'a Path,
    public_key: &'a Path,
    fingerprint: &'a str,
    encrypted: bool,
}

impl KeyCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        match self.action {
            KeyAction::Generate(args) => args.execute(printer),
        }
    }
}

impl GenerateArgs {
    fn execute(self, printer: &Printer) -> Result<Status> {
        let password = if self.no_password {
            None
        } else {
            Some(new_password()?)
        };
        let generated = signing::generate(
            &self.output_prefix,
            password.as_deref().map(String::as_str),
            self.force,
        )?;
        if self.no_password {
            printer.warn(&format!(
                "`{}` is not encrypted: anyone who can read it can sign as you",
                generated.private_key.display()
            ));
        }
        if printer.json_output() {
            printer.json(&Generated {
                private_key: &generated.private_key,
                public_key: &generated.public_key,
                fingerprint: generated.fingerprint.as_str(),
                encrypted: generated.encrypted,
            })?;
        } else {
            printer.result(&format!(
                "{GREEN}✓{GREEN:#} wrote {BOLD}{}{BOLD:#} and {BOLD}{}{BOLD:#} (key {})",
                generated.private_key.display(),
                generated.public_key.display(),
                generated.fingerprint.short()
            ));
        }
        Ok(Status::Success)
    }
}

/// The password for a new key: PACK_KEY_PASSWORD, or asked twice on a terminal.
fn new_password() -> Result<Zeroizing<String>> {
    if let Some(password) = std::env::var_os(PASSWORD_ENV) {
        let Ok(password) = password.into_string().map(Zeroizing::new) else {
            bail!("{PASSWORD_ENV} is not valid UTF-8");
        };
        if password.is_empty() {
            bail!(
                "{PASSWORD_ENV} is empty; set a password, or pass --no-password for an \
                 unencrypted key"
            );
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password for the private key: set {PASSWORD_ENV}, or pass --no-password for \
             an unencrypted key"
        );
    }
    let first = Zeroizing::new(rpassword::prompt_password(
        "Password for the new private key: ",
    )?);
    if first.as_str().is_empty() {
        bail!("empty password; pass --no-password for an unencrypted key");
    }
    let second = Zeroizing::new(rpassword::prompt_password("Repeat the password: ")?);
    if first.as_str() != second.as_str() {
        bail!("the passwords do not match");
    }
    Ok(first)
}
