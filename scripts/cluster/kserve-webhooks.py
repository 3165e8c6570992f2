"""KServe's webhook registrations, pointed at a controller that runs out of the cluster.

Used by scripts/cluster.sh: reads KServe's config/webhook/manifests.yaml (from the KServe module's
source, which names the webhooks' Service through kustomize variables) and prints it with each
`clientConfig.service` replaced by `clientConfig.url: <base><path>` and the self-made certificate
as `caBundle`.

    python3 kserve-webhooks.py MANIFESTS_YAML CERT_PEM BASE_URL > webhooks.yaml
"""

import base64
import re
import sys


def main() -> None:
    manifests, cert, base = sys.argv[1:4]
    with open(manifests, encoding="utf-8") as f:
        text = f.read()
    with open(cert, "rb") as f:
        bundle = base64.b64encode(f.read()).decode()
    service = re.compile(r"^(\s*)service:\n\s*name: .*\n\s*namespace: .*\n\s*path: (\S+)\n", re.M)
    out, n = service.subn(lambda m: f"{m[1]}url: {base}{m[2]}\n{m[1]}caBundle: {bundle}\n", text)
    if n == 0 or "service:" in out:
        sys.exit(f"kserve-webhooks.py: {manifests} is not laid out as expected ({n} webhooks rewritten)")
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
