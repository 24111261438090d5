//! `container registry login|logout|list`.

use std::io::{IsTerminal, Read};

use container_api::StateRoot;
use container_api::apiserver::LoginRequest;
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::cli::{Format, RegistryCommand, RegistryLoginArgs};
use crate::daemon::connect;
use crate::output::{print_table, table};

/// Runs one `registry` subcommand.
pub async fn run(root: &StateRoot, cmd: RegistryCommand) -> Result<i32> {
    let client = connect(root).await?;
    match cmd {
        RegistryCommand::Login(a) => {
            let server = a.server.clone();
            let req = login_request(a)?;
            client.login(req).await?;
            println!("Login succeeded for {server}");
        }
        RegistryCommand::Logout(a) => {
            client.logout(&a.server).await?;
            println!("Removed login for {}", a.server);
        }
        RegistryCommand::List(f) => {
            let logins = client.list_logins().await?;
            match f.format {
                Format::Json => {
                    let v: Vec<_> = logins
                        .iter()
                        .map(|l| serde_json::json!({"hostname": l.host, "username": l.username}))
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Format::Table => {
                    let mut t = table(&["HOSTNAME", "USERNAME"]);
                    for l in &logins {
                        t.add_row(vec![l.host.clone(), l.username.clone()]);
                    }
                    print_table(&t);
                }
            }
        }
    }
    Ok(0)
}

fn login_request(a: RegistryLoginArgs) -> Result<LoginRequest> {
    let interactive = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => prompt("Username: ")?,
        None => {
            return Err(ContainerizationError::invalid_argument(
                "no username: pass --username",
            ));
        }
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context(
            Code::InvalidArgument,
            "reading the password from standard input",
        )?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive {
        rpassword::prompt_password("Password: ")
            .context(Code::InvalidArgument, "reading the password")?
    } else {
        return Err(ContainerizationError::invalid_argument(
            "no terminal to ask for the password: use --password-stdin",
        ));
    };
    if password.is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "the password is empty",
        ));
    }
    Ok(LoginRequest {
        host: a.server,
        username,
        password,
        scheme: a.scheme.as_str().into(),
    })
}

fn prompt(label: &str) -> Result<String> {
    use std::io::Write;
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context(Code::InvalidArgument, "reading the username")?;
    Ok(line.trim().to_string())
}
