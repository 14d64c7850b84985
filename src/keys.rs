//! Loading signing keys: the password from PACK_KEY_PASSWORD or a prompt, and a warning
//! for a private key others can read.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Result, bail};
use pack_packager::signing::{self, PrivateKey};
use zeroize::Zeroizing;

use crate::printer::Printer;

/// The environment variable that holds the private key's password.
pub const PASSWORD_ENV: &str = "PACK_KEY_PASSWORD";

/// [`load_private_key`], with one warning first when group or others can read or write
/// the file (ssh refuses such a key; pack warns).
pub(crate) fn load_private_key_checked(path: &Path, printer: &Printer) -> Result<PrivateKey> {
    if let Some(warning) = key_file_warning(path) {
        printer.warn(&warning);
    }
    load_private_key(path)
}

/// The warning for a private key file that group or others can read or write.
pub(crate) fn key_file_warning(path: &Path) -> Option<String> {
    let mode = signing::exposed_key_mode(path)?;
    Some(format!(
        "the private key `{}` is accessible by others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    ))
}

/// Loads a private key, decrypting it with PACK_KEY_PASSWORD or, when that is not set
/// and stdin is a terminal, a password asked for.
pub(crate) fn load_private_key(path: &Path) -> Result<PrivateKey> {
    let env = match std::env::var_os(PASSWORD_ENV) {
        Some(v) => match v.into_string() {
            Ok(s) => Some(Zeroizing::new(s)),
            Err(_) => bail!("{PASSWORD_ENV} is not valid UTF-8"),
        },
        None => None,
    };
    match PrivateKey::load(path, env.as_deref().map(String::as_str)) {
        Err(pack_packager::Error::PasswordRequired { .. }) if std::io::stdin().is_terminal() => {
            let password = Zeroizing::new(rpassword::prompt_password(format!(
                "Password for `{}`: ",
                path.display()
            ))?);
            Ok(PrivateKey::load(path, Some(password.as_str()))?)
        }
        other => Ok(other?),
    }
}
