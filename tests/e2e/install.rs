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
    assert!(
        stdout(&[]) == deploy("weft.yaml"),
        "deploy/kubernetes/weft.yaml is stale: run `weft install > deploy/kubernetes/weft.yaml`"
    );
    assert!(
        stdout(&["--with-demo"]) == deploy("weft-with-demo.yaml"),
        "deploy/kubernetes/weft-with-demo.yaml is stale: run \
         `weft install --with-demo > deploy/kubernetes/weft-with-demo.yaml`"
    );
}

#[test]
fn every_rendered_manifest_passes_kubernetes_validate_strict() {
    let dir = weft_tests::TempDir::new("install");
    let cases: [(&str, &[&str], usize); 3] = [
        ("default.yaml", &[], 14),
        ("demo.yaml", &["--with-demo"], 18),
        (
            "custom.yaml",
            &[
                "--namespace",
                "mesh-system",
                "--image",
                "registry.example/weft:1.2.3",
                "--with-demo",
            ],
            18,
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
