# shellcheck shell=bash
# shellcheck disable=SC2154 # $docker and $base_packages come from ci/e2e-lib.sh
# Shared by ci/image-e2e.sh and ci/compose-e2e.sh, sourced after ci/e2e-lib.sh: the smoke
# stack's image, built with BuildKit from the generated Dockerfile unchanged, the prebuilt
# podstack binary and the locked wheels, with no network at all during the build.

# Every apt package the smoke Dockerfile installs must be in the base, or the offline build
# fails on a machine whose BuildKit cache is empty.
check_base_packages() {
    local package
    for package in $(sed -n '/apt-get install/,/^$/p' generated/smoke/Dockerfile \
            | grep -o '^ *[a-z0-9][a-z0-9.+-]* *[\]\?$' | tr -cd 'a-z0-9.+\n-'); do
        case ",$base_packages," in
            *",$package,"*) ;;
            *) fail "generated/smoke/Dockerfile installs $package, which base_packages lacks" ;;
        esac
    done
}

# prepare_smoke WORK: sets $podstack (a stripped build of this tree) and $project (a copy of
# the project under WORK, where a test may change a stack without touching the repository),
# and fills WORK/wheelhouse with the wheels stacks/smoke.lock pins.
prepare_smoke() {
    local work=$1
    say "podstack binary"
    cargo build --locked --quiet
    cp target/debug/podstack "$work/podstack"
    strip "$work/podstack"
    podstack="$work/podstack"

    project="$work/project"
    mkdir -p "$project/templates" "$project/tests/fixtures"
    cp -r stacks "$project/"
    cp -r templates/ui "$project/templates/"
    cp -r tests/fixtures/comfyui "$project/tests/fixtures/"

    say "wheelhouse: the locked wheels, checked against stacks/smoke.lock"
    (cd "$project" && "$podstack" wheelhouse smoke "$work/wheelhouse") || fail "podstack wheelhouse"
    [ -f "$work/wheelhouse/six-1.17.0-py2.py3-none-any.whl" ] || fail "six is not in the wheelhouse"
}

# build_image WORK NAME: builds $project's smoke stack, staged in WORK/ctx-NAME; prints the tag.
build_image() {
    local work=$1 ctx="$1/ctx-$2" tag
    tag=$(cd "$project" && "$podstack" context smoke "$ctx" --binary "$podstack" 2>/dev/null)
    cp -r "$work/wheelhouse" "$ctx/wheelhouse"
    DOCKER_BUILDKIT=1 "$docker" build -q --network none -f "$ctx/generated/smoke/Dockerfile" \
        --build-arg PODSTACK_SUPERVISOR=prebuilt --build-arg PODSTACK_PACKAGES=wheelhouse \
        -t "$tag" "$ctx" >/dev/null \
        || fail "docker build of $tag"
    echo "$tag"
}
