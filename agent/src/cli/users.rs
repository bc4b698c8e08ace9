//! `vigil users add|list|remove|passwd`: the console's local accounts in `<data_dir>/console.sqlite`,
//! whether or not the agent is running (both open the same file; the agent reads it at every request, so a
//! removed user is refused at once). Every change is written to the console's audit log as `cli`.
//!
//! A password is never an argument (it would sit in the shell's history and in `ps`): it is asked on the
//! terminal twice, without echo, or read as the first line of standard input when that is not a terminal
//! (scripts: `printf '%s\n' "$PASSWORD" | vigil users add ...`).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::SystemTime;

use vigil::console::store::CLI;
use vigil::console::{Role, Store};

use super::{CliError, CliResult, load_config, print_json};

#[derive(clap::Subcommand)]
pub enum Users {
    /// Add a console user with a role; the password is asked (or read from standard input).
    Add {
        #[arg(long, short)]
        config: PathBuf,
        /// The sign-in name (letters, digits, '.', '-', '_').
        #[arg(long)]
        name: String,
        /// installer: sets the box up; supervisor: reviews events, legal holds, the audit log; viewer: looks.
        #[arg(long, value_enum)]
        role: Role,
        /// Generate a one-time password and print it (nothing is read): at their first sign-in the console
        /// lets the user do nothing but choose their own.
        #[arg(long)]
        one_time: bool,
    },
    /// List the console users.
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a console user; their sessions end at once.
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Give a console user a new password (asked, or read from standard input); their sessions end.
    Passwd {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        /// Generate a one-time password and print it instead (for a user who forgot theirs): they choose
        /// their own at the next sign-in.
        #[arg(long)]
        one_time: bool,
    },
}

pub fn users(command: Users) -> CliResult {
    match command {
        Users::Add { config, name, role, one_time } => {
            let store = open(&config)?;
            if one_time {
                let (user, password) =
                    store.add_user_one_time(&name, role, CLI, SystemTime::now()).map_err(usage("add"))?;
                println!("console user {} added ({})", user.name, user.role);
                print_one_time(&user.name, &password);
                return Ok(());
            }
            let password = read_password(&format!("password for {name}: "))?;
            let user = store.add_user(&name, role, &password, CLI, SystemTime::now()).map_err(usage("add"))?;
            println!("console user {} added ({})", user.name, user.role);
            Ok(())
        }
        Users::List { config, json } => {
            let users = open(&config)?.users().map_err(failed("list"))?;
            if json {
                return print_json(&users);
            }
            if users.is_empty() {
                println!("no console users: add one with `vigil users add --name <name> --role installer`");
            }
            for user in users {
                println!(
                    "{:<24} {:<10} added {}",
                    user.name,
                    user.role,
                    humantime::format_rfc3339_seconds(user.created_at)
                );
            }
            Ok(())
        }
        Users::Remove { config, name } => {
            open(&config)?.remove_user(&name, CLI, SystemTime::now()).map_err(usage("remove"))?;
            println!("console user {name} removed; their sessions ended");
            Ok(())
        }
        Users::Passwd { config, name, one_time } => {
            let store = open(&config)?;
            // Refused before the password is asked when there is no such user.
            if !store.users().map_err(failed("passwd"))?.iter().any(|u| u.name == name) {
                return Err(CliError::Usage(format!("vigil users passwd: no console user {name:?}")));
            }
            if one_time {
                let password = store.reset_password(&name, CLI, SystemTime::now()).map_err(usage("passwd"))?;
                println!("password of {name} reset; their sessions ended");
                print_one_time(&name, &password);
                return Ok(());
            }
            let password = read_password(&format!("new password for {name}: "))?;
            store.set_password(&name, &password, CLI, SystemTime::now()).map_err(usage("passwd"))?;
            println!("password of {name} changed; their sessions ended");
            Ok(())
        }
    }
}

/// The one place a one-time password is shown: it is not stored anywhere but as its hash.
fn print_one_time(name: &str, password: &str) {
    println!("one-time password for {name}: {password}");
    println!("(shown once; at the first sign-in the console asks {name} to choose their own)");
}

fn usage(command: &'static str) -> impl Fn(vigil::console::StoreError) -> CliError {
    move |e| match e {
        vigil::console::StoreError::Db { .. } | vigil::console::StoreError::TooNew { .. } => {
            CliError::Failed(format!("vigil users {command}: {e}"))
        }
        _ => CliError::Usage(format!("vigil users {command}: {e}")),
    }
}

fn failed(command: &'static str) -> impl Fn(vigil::console::StoreError) -> CliError {
    move |e| CliError::Failed(format!("vigil users {command}: {e}"))
}

fn open(config: &std::path::Path) -> Result<Store, CliError> {
    let config = load_config(config)?;
    vigil::fsio::create_dir(&config.storage.data_dir, vigil::fsio::PRIVATE_DIR)
        .map_err(|e| CliError::Failed(format!("vigil users: {}: {e}", config.storage.data_dir.display())))?;
    Store::open(&Store::path_in(&config.storage.data_dir)).map_err(|e| CliError::Failed(format!("vigil users: {e}")))
}

/// The password: asked twice on the terminal (no echo), or the first line of standard input.
fn read_password(prompt: &str) -> Result<String, CliError> {
    let io = |e: std::io::Error| CliError::Failed(format!("vigil users: reading the password: {e}"));
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).map_err(io)?;
        let again = rpassword::prompt_password("again: ").map_err(io)?;
        if first != again {
            return Err(CliError::Usage("vigil users: the two passwords differ; nothing was changed".into()));
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(io)?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.is_empty() {
        return Err(CliError::Usage(
            "vigil users: no password on standard input (give it as the first line, or run on a terminal)".into(),
        ));
    }
    Ok(password.to_owned())
}
