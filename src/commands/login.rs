//! `pack login`: check and store registry credentials the way `docker login` does.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use pack_registry_client::auth::{self, AuthEnv, Credentials, PASSWORD_ENV, USERNAME_ENV};
use zeroize::Zeroizing;

use crate::args::RegistryArgs;
use crate::exit::Status;
use crate::printer::{BOLD, GREEN, Printer};
use crate::registry::{into_anyhow, runtime};

/// Log in to a registry: check the credentials against it, then store them where docker
/// (and pack) find them.
///
/// They go to the registry's credential helper when the docker config names one
/// (`credHelpers`, or `credsStore`), else into the docker config file
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, mode 0600) as a base64 `auth`
/// entry. The username comes from --username or PACK_REGISTRY_USERNAME; the password
/// from --password-stdin, PACK_REGISTRY_PASSWORD, or a prompt on a terminal.
///
/// PACK_REGISTRY_USERNAME/PACK_REGISTRY_PASSWORD are for one registry: when
/// PACK_REGISTRY (host[:port]) names another than REGISTRY, they are not sent and the
/// login fails (exit 2) rather than hand them to REGISTRY.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  echo \"$TOKEN\" | pack login ghcr.io -u team --password-stdin
  PACK_REGISTRY_USERNAME=ci PACK_REGISTRY_PASSWORD=... pack login registry.example.com
  PACK_REGISTRY=registry.example.com PACK_REGISTRY_USERNAME=ci PACK_REGISTRY_PASSWORD=... \
    pack login registry.example.com

Exit status:
  0  logged in; the credentials are stored
  2  usage error, or the credentials cannot be stored
  3  the registry refused the credentials
  4  the registry cannot be reached")]
pub struct LoginCommand {
    /// The registry host, e.g. `ghcr.io` or `127.0.0.1:5000`.
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    #[command(flatten)]
    pub options: RegistryArgs,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLogin<'a> {
    registry: &'a str,
    scheme: pack_registry_client::Scheme,
    stored: auth::Stored,
}

impl LoginCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let registry = self
            .registry
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        if registry.is_empty() || registry.contains('/') {
            bail!(
                "`{}` is not a registry host (e.g. ghcr.io or 127.0.0.1:5000)",
                self.registry
            );
        }
        let credentials = self.credentials(&registry)?;
        let scheme = runtime()?
            .block_on(pack_registry_client::check_credentials(
                &registry,
                &credentials,
                &self.options.connect_options(),
            ))
            .map_err(into_anyhow)?;
        let stored =
            auth::store(&registry, &credentials, &AuthEnv::from_process()).map_err(into_anyhow)?;
        if printer.json_output() {
            printer.json(&JsonLogin {
                registry: &registry,
                scheme,
                stored,
            })?;
        } else {
            printer.result(&format!(
                "{GREEN}✓{GREEN:#} logged in to {BOLD}{registry}{BOLD:#}; credentials stored in {stored}"
            ));
        }
        Ok(Status::Success)
    }

    fn credentials(&self, registry: &str) -> Result<Credentials> {
        if let Some(explicit) = self.options.explicit_credentials()? {
            return Ok(explicit);
        }
        let env = AuthEnv::from_process().for_command(registry);
        if let Some(withheld) = env.withheld_from(registry) {
            bail!("{withheld}; pass --username with --password-stdin to log in to {registry}");
        }
        let Some(username) = env.username.clone() else {
            bail!("no username: pass --username with --password-stdin, or set {USERNAME_ENV}");
        };
        let password = match env.password {
            Some(p) => p,
            None if std::io::stdin().is_terminal() => Zeroizing::new(rpassword::prompt_password(
                format!("Password for {username}: "),
            )?),
            None => bail!("no password: pass --password-stdin, or set {PASSWORD_ENV}"),
        };
        Ok(Credentials::new(username, password.as_str()))
    }
}
