//! The Dockerfile agrees with the README's "Container image" section and with the code: the port,
//! the config path and the folders the config reads, the binary the entry point and health check
//! run, the subcommands the README runs in the image, and the Rust version the crate needs.
//! (CI lints the file itself with hadolint; no Docker engine is needed for either.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuations joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of each stage, in order.
fn stages(text: &str) -> Vec<Vec<Instruction>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for l in logical {
        let (keyword, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let i = Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_owned() };
        if i.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("the Dockerfile starts with FROM").push(i);
    }
    stages
}

fn one<'a>(stage: &'a [Instruction], keyword: &str) -> &'a str {
    let found: Vec<&Instruction> = stage.iter().filter(|i| i.keyword == keyword).collect();
    assert_eq!(found.len(), 1, "expected one {keyword} in the runtime stage, found {}", found.len());
    &found[0].args
}

/// `KEY=value` pairs of every ENV in the stage.
fn env(stage: &[Instruction]) -> Vec<(String, String)> {
    stage
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| i.args.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("ENV '{kv}': expected KEY=value"));
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn env_var<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("the image sets no {key}"))
}

/// An exec-form (`["a", "b"]`) argument list.
fn exec_form(args: &str) -> Vec<String> {
    let json = args.trim_start_matches(|c: char| c != '[');
    serde_json::from_str(json).unwrap_or_else(|e| panic!("expected exec form [\"...\"], found '{args}': {e}"))
}

/// Where `COPY [--from=..] src dest` puts things in the image, for each source.
fn copies(stage: &[Instruction]) -> Vec<(Option<String>, String, PathBuf)> {
    let mut workdir = PathBuf::from("/");
    let mut out = Vec::new();
    for i in stage {
        match i.keyword.as_str() {
            "WORKDIR" => workdir = workdir.join(&i.args),
            "COPY" => {
                let words: Vec<&str> = i.args.split_whitespace().collect();
                let from = words.iter().find_map(|w| w.strip_prefix("--from=")).map(str::to_owned);
                let paths: Vec<&str> = words.iter().copied().filter(|w| !w.starts_with("--")).collect();
                let (dest, sources) = paths.split_last().expect("COPY needs a source and a destination");
                for s in sources {
                    let target = workdir.join(dest);
                    let target = if dest.ends_with('/') && sources.len() > 1 { target.join(s) } else { target };
                    out.push((from.clone(), s.to_string(), normalize(&target)));
                }
            }
            _ => {}
        }
    }
    out
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Lines of the README's "Container image" shell blocks, continuations joined, comments cut.
fn readme_commands(readme: &str) -> Vec<String> {
    let start = readme.find("## Container image").expect("README has a '## Container image' section");
    let section = &readme[start + 3..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let code = line.split(" #").next().unwrap_or("").trim_end();
        match code.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(code);
                commands.push(std::mem::take(&mut current).split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    commands
}

/// What a `docker run` line asks of the image: published ports, `-e` variables and the arguments
/// after the image name.
#[derive(Debug, Default)]
struct DockerRun {
    container_ports: Vec<u16>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

fn docker_run(command: &str, image: &str) -> DockerRun {
    let words: Vec<String> = command.split_whitespace().map(|w| w.trim_matches('"').to_owned()).collect();
    let mut run = DockerRun::default();
    let mut i = 2; // after `docker run`
    while i < words.len() && words[i] != image {
        match words[i].as_str() {
            "-p" | "--publish" => {
                let port = words[i + 1].rsplit(':').next().unwrap();
                run.container_ports.push(port.parse().unwrap_or_else(|_| panic!("README: bad -p in '{command}'")));
                i += 2;
            }
            "-e" | "--env" => {
                let (k, v) = words[i + 1].split_once('=').unwrap_or((&words[i + 1], ""));
                run.env.push((k.to_owned(), v.to_owned()));
                i += 2;
            }
            "-v" | "--volume" | "--name" => i += 2,
            _ => i += 1,
        }
    }
    assert!(i < words.len(), "README: '{command}' does not run the image '{image}'");
    run.args = words[i + 1..].to_vec();
    run
}

fn subcommand_exists(name: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args([name, "--help"]).output().unwrap().status.success()
}

#[test]
fn dockerfile_agrees_with_the_readme_and_the_code() {
    let root = common::repo();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let stages = stages(&dockerfile);
    assert!(stages.len() >= 2, "expected a multi-stage build");
    let (build, runtime) = (&stages[0], stages.last().unwrap());

    // The build stage's Rust is at least the crate's rust-version.
    let manifest: String = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml sets rust-version")
        .trim_matches('"');
    let from = one(build, "FROM");
    let image_rust = from.strip_prefix("rust:").expect("the build stage is FROM rust:<version>");
    let version = |v: &str| -> Vec<u32> { v.split(['.', '-']).map_while(|p| p.parse().ok()).collect() };
    assert!(
        version(image_rust) >= version(rust_version),
        "Dockerfile builds with {from} but Cargo.toml needs Rust {rust_version}"
    );
    assert!(readme.contains(from.split_whitespace().next().unwrap()), "README should name the build image {from}");

    // Everything the build copies exists.
    for (_, src, _) in copies(build) {
        assert!(root.join(&src).exists(), "Dockerfile copies '{src}', which is not in the repository");
    }

    // A small runtime, not root.
    let base = one(runtime, "FROM");
    assert!(base.contains("distroless") || base.contains("slim"), "runtime image '{base}' is not distroless or slim");
    let base_name = base.split(':').next().unwrap();
    assert!(readme.contains(base_name), "README should name the runtime image {base_name}");
    let user = one(runtime, "USER");
    let uid = user.split(':').next().unwrap();
    assert!(!matches!(uid, "root" | "0"), "the runtime runs as root ({user})");
    assert!(readme.contains(&format!("user {uid}")), "README should say the image runs as user {uid}");

    // Port: EXPOSE, SLUICE_LISTEN and the README's -p agree.
    let vars = env(runtime);
    let port: u16 = one(runtime, "EXPOSE").parse().expect("EXPOSE <port>");
    let listen: std::net::SocketAddr = env_var(&vars, "SLUICE_LISTEN").parse().expect("SLUICE_LISTEN is an address");
    assert!(listen.ip().is_unspecified(), "SLUICE_LISTEN={listen}: inside a container sluice must listen on 0.0.0.0");
    assert_eq!(listen.port(), port, "SLUICE_LISTEN={listen} but the image EXPOSEs {port}");
    assert!(readme.contains(&format!("`{listen}`")), "README should say the image listens on `{listen}`");

    // Config: SLUICE_CONFIG is where the shipped config is copied, and the folders it reads
    // (pipelines_dir, schemas_dir, relative to it) are copied where it looks for them.
    let config_path = PathBuf::from(env_var(&vars, "SLUICE_CONFIG"));
    assert!(readme.contains(&format!("`{}`", config_path.display())), "README should name {}", config_path.display());
    let placed = copies(runtime);
    let image_path_of = |repo_path: &Path| -> PathBuf {
        placed
            .iter()
            .filter(|(from, _, _)| from.is_none())
            .find_map(|(_, src, dest)| {
                repo_path.strip_prefix(src.trim_end_matches('/')).ok().map(|rest| dest.join(rest))
            })
            .map(|p| normalize(&p))
            .unwrap_or_else(|| panic!("the image does not contain {}", repo_path.display()))
    };
    assert_eq!(
        image_path_of(Path::new("config/sluice.yaml")),
        config_path,
        "SLUICE_CONFIG does not point at the copied config/sluice.yaml"
    );
    let config = sluice::config::load(&root.join("config/sluice.yaml")).expect("the shipped config loads");
    let config_dir = config_path.parent().unwrap();
    for (what, dir) in [("pipelines_dir", &config.global.pipelines_dir), ("schemas_dir", &config.global.schemas_dir)] {
        let expected = normalize(&config_dir.join(dir));
        let repo_dir = normalize(&Path::new("config").join(dir));
        assert_eq!(
            image_path_of(&repo_dir),
            expected,
            "config {what} ({}) resolves to {} in the image, but {} is copied elsewhere",
            dir.display(),
            expected.display(),
            repo_dir.display()
        );
    }

    // Entry point and health check run the binary the build stage installed, with real subcommands.
    let binary = placed
        .iter()
        .find(|(from, _, _)| from.is_some())
        .map(|(_, _, dest)| dest.display().to_string())
        .expect("the runtime copies the binary from the build stage");
    let entrypoint = exec_form(one(runtime, "ENTRYPOINT"));
    assert_eq!(entrypoint, vec![binary.clone()], "ENTRYPOINT should be the copied binary");
    let cmd = exec_form(one(runtime, "CMD"));
    assert!(subcommand_exists(&cmd[0]), "CMD runs `sluice {}`, which is not a subcommand", cmd[0]);
    let health = exec_form(one(runtime, "HEALTHCHECK"));
    assert_eq!(health, vec![binary, "healthcheck".to_owned()], "HEALTHCHECK should run `sluice healthcheck`");
    assert!(subcommand_exists("healthcheck"));

    // The README's commands: build with the tag it runs; every run publishes the exposed port and
    // names real subcommands; a config override points SLUICE_CONFIG inside a mounted folder.
    let commands = readme_commands(&readme);
    let build_cmd = commands.iter().find(|c| c.starts_with("docker build")).expect("README shows docker build");
    let tag = build_cmd.split_whitespace().skip_while(|w| *w != "-t").nth(1).expect("docker build -t <tag>");
    let runs: Vec<DockerRun> =
        commands.iter().filter(|c| c.starts_with("docker run")).map(|c| docker_run(c, tag)).collect();
    assert!(runs.len() >= 2, "README should show running the image and overriding its config");
    for run in &runs {
        if let Some(sub) = run.args.first() {
            assert!(subcommand_exists(sub), "README runs `sluice {sub}` in the image: no such subcommand");
        }
        let serves = run.args.first().is_none_or(|a| a == &cmd[0]);
        if serves {
            assert_eq!(run.container_ports, vec![port], "README runs the server without publishing port {port}");
        }
        for (k, _) in &run.env {
            assert!(
                dockerfile.contains(k) || readme.contains(&format!("`{k}`")),
                "README sets {k}, documented nowhere"
            );
        }
    }
    assert!(
        runs.iter().any(|r| r.env.iter().any(|(k, v)| k == "SLUICE_CONFIG" && v.ends_with("sluice.yaml"))),
        "README should show overriding the config with SLUICE_CONFIG"
    );
}
