//! Build script: passes nginx's feature and version cfgs to the compiler, and
//! the directory of this build's nginx binary to the integration tests.

use std::env;

fn main() {
    // nginx-sys detects the features of the nginx tree it was built against.
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES_CHECK");
    println!(
        "cargo::rustc-check-cfg=cfg(ngx_feature, values({}))",
        env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or_else(|_| "any()".to_string())
    );
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    if let Ok(features) = env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }

    // nginx 1.23.0 chains headers of the same name through
    // `ngx_table_elt_t.next` and turned `headers_in.cookies`, an array of
    // header pointers, into `headers_in.cookie`, the head of such a chain.
    // Debian bookworm ships nginx 1.22.1, which has neither.
    println!("cargo::rustc-check-cfg=cfg(ngx_linked_headers)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version = env::var("DEP_NGINX_VERSION_NUMBER")
        .expect("nginx-sys did not set DEP_NGINX_VERSION_NUMBER, the nginx version to build for");
    let version: u64 = version.trim().parse().unwrap_or_else(|error| {
        panic!("DEP_NGINX_VERSION_NUMBER {version:?} is not a number: {error}")
    });
    if version >= 1_023_000 {
        println!("cargo::rustc-cfg=ngx_linked_headers");
    }

    // The integration tests start `<build dir>/nginx`, the binary that the
    // module was compiled against, unless TEST_NGINX_BINARY overrides it.
    println!("cargo::rerun-if-env-changed=DEP_NGINX_BUILD_DIR");
    if let Ok(dir) = env::var("DEP_NGINX_BUILD_DIR") {
        println!("cargo::rustc-env=AUTHGEAR_NGINX_BUILD_DIR={dir}");
    }
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION");
    if let Ok(version) = env::var("DEP_NGINX_VERSION") {
        println!("cargo::rustc-env=AUTHGEAR_NGINX_VERSION={version}");
    }
}
