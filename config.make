# Appends the rule that builds the module's Rust static library to nginx's
# objs/Makefile. nginx's configure sources this file after `config`, in the
# same shell, so the ngx_authgear_* variables set there are still defined.

cat << END                                                    >> $NGX_MAKEFILE

# ngx_http_authgear_module: cargo tracks the Rust sources itself, so make
# runs it every time and it rebuilds only what changed.
.PHONY: $ngx_authgear_lib

$ngx_authgear_lib:
	NGINX_SOURCE_DIR="$ngx_authgear_source_dir" \\
	NGINX_BUILD_DIR="$ngx_authgear_build_dir" \\
	$ngx_authgear_cargo rustc \\
		--manifest-path "$ngx_authgear_dir/Cargo.toml" \\
		--package ngx-http-authgear-module \\
		--lib \\
		--crate-type staticlib \\
		--no-default-features \\
		--profile $ngx_authgear_profile \\
		--target-dir "$ngx_authgear_target_dir"

END

if [ "$ngx_authgear_link" = DYNAMIC ]; then
    # nginx's link rule for the .so lists only C objects as prerequisites.
    cat << END                                                >> $NGX_MAKEFILE
$NGX_OBJS${ngx_dirsep}ngx_http_authgear_module$ngx_modext:	$ngx_authgear_lib

END
fi
