//! What Fly says of the account through flyctl: who is logged in, which apps exist, which
//! secrets and volumes an app has. Each query fails with the command, the end of its output and
//! what to try next.

use serde::Deserialize;

use crate::flyctl::Flyctl;
use crate::secrets::Mask;

/// `flyctl auth whoami --json`.
#[derive(Deserialize)]
struct WhoAmI {
    email: String,
}

/// One entry of `flyctl apps list --json` (fly-go's `App`, whose fields are capitalized) or of
/// `flyctl secrets list --json`.
#[derive(Deserialize)]
struct Listed {
    #[serde(alias = "Name")]
    name: String,
}

/// One entry of `flyctl volumes list --json` (fly-go's `Volume`).
#[derive(Deserialize)]
pub struct ListedVolume {
    /// The volume's name, which several volumes of an app may share.
    pub name: String,
    /// The region it is in.
    pub region: String,
}

impl Flyctl {
    /// The email of the account flyctl is logged in as.
    pub fn whoami(&self, mask: &Mask) -> anyhow::Result<String> {
        let who: WhoAmI = self.query(
            &["auth", "whoami", "--json"],
            mask,
            "check the flyctl login",
            "run `flyctl auth login` (in CI, set FLY_API_TOKEN to an organization token from `flyctl tokens create org`)",
        )?;
        Ok(who.email)
    }

    /// The names of the apps the login can see.
    pub fn apps(&self, mask: &Mask) -> anyhow::Result<Vec<String>> {
        let listed: Vec<Listed> = self.query(
            &["apps", "list", "--json"],
            mask,
            "list the Fly apps",
            "an app-scoped token (`flyctl tokens create deploy`) cannot list apps: use `flyctl auth login` or an \
             organization token (`flyctl tokens create org`)",
        )?;
        Ok(listed.into_iter().map(|app| app.name).collect())
    }

    /// The names of the secrets set on `app` (Fly never gives their values back).
    pub fn secret_names(&self, app: &str, mask: &Mask) -> anyhow::Result<Vec<String>> {
        let listed: Vec<Listed> = self.query(
            &["secrets", "list", "--app", app, "--json"],
            mask,
            &format!("list the secrets of {app}"),
            "check that the token may read this app (`flyctl secrets list --app <app>`)",
        )?;
        Ok(listed.into_iter().map(|secret| secret.name).collect())
    }

    /// The volumes of `app`.
    pub fn volumes(&self, app: &str, mask: &Mask) -> anyhow::Result<Vec<ListedVolume>> {
        self.query(
            &["volumes", "list", "--app", app, "--json"],
            mask,
            &format!("list the volumes of {app}"),
            "check that the token may read this app (`flyctl volumes list --app <app>`)",
        )
    }
}
