//! `weft install`: the manifests in deploy/ are exactly what it prints, and every manifest
//! it prints passes `kubernetes-validate --strict` (the real Kubernetes schemas).

use std::path::Path;
use std::process::Command;

use weft_tests::proxy::weft_bin;

fn install(args: &[&str]) -> std::process::Output {
    Command::new(weft_bin())
        .arg("install")
        .args(args)
        .output()
        .expect("run weft install")
}

fn stdout(args: &[&str]) -> String {
    let out = install(args);
    assert!(
        out.status.success(),
        "weft install {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifests")
}

fn deploy(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn deploy_holds_exactly_what_weft_install_prints() {
    // With the CA kept out: a checked-in manifest must hold no key.
    assert!(
        stdout(&["--external-ca"]) == deploy("weft.yaml"),
        "deploy/kubernetes/weft.yaml is stale: run \
         `weft install --external-ca > deploy/kubernetes/weft.yaml`"
    );
    assert!(
        stdout(&["--external-ca", "--with-demo"]) == deploy("weft-with-demo.yaml"),
        "deploy/kubernetes/weft-with-demo.yaml is stale: run \
         `weft install --external-ca --with-demo > deploy/kubernetes/weft-with-demo.yaml`"
    );
    assert!(!deploy("weft.yaml").contains("PRIVATE KEY"));
}

/// Each `weft install` makes a CA of its own unless given one; given a folder, it carries
/// exactly that folder's files, and refuses one that does not check.
#[test]
fn install_carries_the_mesh_ca() {
    let first = stdout(&[]);
    let second = stdout(&[]);
    assert!(first.contains("kind: Secret") && first.contains("BEGIN PRIVATE KEY"));
    assert_ne!(first, second, "each install makes its own CA");
    let dir = weft_tests::TempDir::new("install-ca");
    let ca = dir.path("ca");
    let made = Command::new(weft_bin())
        .args(["identity", "init"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(made.status.success());
    let given = stdout(&["--identity-dir", ca.to_str().unwrap()]);
    assert_eq!(given, stdout(&["--identity-dir", ca.to_str().unwrap()]));
    let issuer = std::fs::read_to_string(ca.join("issuer.pem")).unwrap();
    let indented: String = issuer.lines().map(|l| format!("    {l}\n")).collect();
    assert!(given.contains(&indented), "{given}");
    std::fs::write(ca.join("issuer.pem"), "not a certificate\n").unwrap();
    let out = install(&["--identity-dir", ca.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("issuer.pem"), "{err}");
}

#[test]
fn every_rendered_manifest_passes_kubernetes_validate_strict() {
    let dir = weft_tests::TempDir::new("install");
    let cases: [(&str, &[&str], usize); 5] = [
        ("default.yaml", &[], 16),
        ("external-ca.yaml", &["--external-ca"], 14),
        ("demo.yaml", &["--with-demo"], 20),
        (
            "ingress.yaml",
            &[
                "--external-ca",
                "--ingress",
                "--otlp",
                "otel-collector.observability:4317",
            ],
            18,
        ),
        (
            "custom.yaml",
            &[
                "--namespace",
                "mesh-system",
                "--image",
                "registry.example/weft:1.2.3",
                "--with-demo",
                "--allow-plaintext-peers",
            ],
            20,
        ),
    ];
    for (file, args, resources) in cases {
        let path = dir.path(file);
        std::fs::write(&path, stdout(args)).unwrap();
        // As a module: a pip-installed script may not be on PATH (pyenv shims, ~/.local/bin).
        let out = Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict"])
            .arg(&path)
            .output()
            .expect("kubernetes-validate is installed (scripts/test installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "weft install {args:?}:\n{text}");
        assert_eq!(
            text.matches(" passed for resource ").count(),
            resources,
            "weft install {args:?}:\n{text}"
        );
    }
}

#[test]
fn a_bad_namespace_or_image_is_refused_with_a_clear_line() {
    let out = install(&["--namespace", "Bad_NS"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--namespace \"Bad_NS\""), "{err}");
    assert!(out.stdout.is_empty());
    let out = install(&["--image", "weft:1\nkind: Secret"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--image"));
}
