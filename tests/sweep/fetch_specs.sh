#!/usr/bin/env bash
# Collects the public OpenAPI documents of the robustness sweep into $SPECS (default
# tests/sweep/specs, ignored by git): they are third-party files and are never
# committed. Each source is a public GitHub repository at a pinned commit; it is cloned
# (blobless, shallow) into $MIRROR unless a clone is already there ($MIRROR/<owner>+<name>/repo,
# the layout of a bare mirror, works too).
set -euo pipefail
SPECS=${SPECS:-$(cd "$(dirname "$0")" && pwd)/specs}
MIRROR=${MIRROR:-$(cd "$(dirname "$0")" && pwd)/mirror}
mkdir -p "$SPECS"

repo_dir() { echo "$MIRROR/${1/\//+}/repo"; }

ensure() { # owner/name commit
  local dir; dir=$(repo_dir "$1")
  if ! git -C "$dir" cat-file -e "$2^{commit}" 2>/dev/null; then
    mkdir -p "$dir"
    git -C "$dir" init -q --bare 2>/dev/null || true
    git -C "$dir" fetch -q --depth 1 --filter=blob:none "https://github.com/$1" "$2"
  fi
}

# file owner/name commit path-in-repo destination (relative to $SPECS)
file() {
  ensure "$1" "$2"
  mkdir -p "$SPECS/$(dirname "$4")"
  git -C "$(repo_dir "$1")" show "$2:$3" > "$SPECS/$4"
}

# tree owner/name commit folder-in-repo destination-folder: a whole folder, for
# documents split over several files (relative $refs)
tree() {
  ensure "$1" "$2"
  mkdir -p "$SPECS/$4"
  git -C "$(repo_dir "$1")" archive "$2" "$3" | tar -x -C "$SPECS/$4"
}

# Stripe's current spec3.json is too large for the mirror used; an older copy (2019-2020,
# 3 MB) vendored by a client library, and an early one from a fork.
file wyyerd/stripe-rs c2f03f8dec41e20b66f9bbe902b8384096ac653c openapi/spec3.json stripe/spec3-2020.json
file 0ctobat/openapi 77c2a2c16ae7d080f2d9edc36a4325f547e64970 openapi/spec3.json stripe/spec3-early.json
file box/box-openapi c9a878a9824344129881392e2b08f7117201e82e openapi.json box/openapi.json
file box/box-openapi c9a878a9824344129881392e2b08f7117201e82e openapi/openapi-v2025.0.json box/openapi-v2025.0.json
file Redocly/museum-openapi-example 2770b2b2e59832d245c7b0eb0badf6568d7efb53 openapi.yaml museum/openapi.yaml
for s in ccompat/v7 gitops/v0 iceberg/v1 registry/v2; do
  file Apicurio/apicurio-registry b40e0173828702a4d9df141c97a32f984fc2eeeb \
    "app/src/main/resources-unfiltered/META-INF/resources/api-specifications/$s/openapi.json" "apicurio/${s//\//-}.json"
done
tree digitalocean/openapi 7c1300c479fed9c353cda9fc21cd968619552304 specification digitalocean
file discord/discord-api-spec 74fda0fad044407ea280043a03ffc9bc64c4e49e specs/openapi.json discord/openapi.json
file sonallux/spotify-web-api a3369587d22fb1b3fe4aeb4022d67469365695b8 fixed-spotify-open-api.yml spotify/fixed-spotify-open-api.yml
file sonallux/spotify-web-api a3369587d22fb1b3fe4aeb4022d67469365695b8 official-spotify-open-api.yml spotify/official-spotify-open-api.yml
for a in CheckoutService-v72 BalancePlatformService-v2 ManagementService-v3 LegalEntityService-v4 PaymentService-v68 \
         TransferService-v4 BalancePlatformTransferNotification-v4 RecurringService-v68; do
  file Adyen/adyen-openapi aa014f0cbdb58ff5c44a2ff9d5fe734642210aff "json/$a.json" "adyen/$a.json" 2>/dev/null || rm -f "$SPECS/adyen/$a.json"
done
file Adyen/adyen-openapi aa014f0cbdb58ff5c44a2ff9d5fe734642210aff yaml/PaymentService-v68.yaml adyen/PaymentService-v68.yaml
for x in xero_accounting xero-payroll-uk xero-payroll-au xero-projects xero-identity xero_files xero_assets xero-webhooks; do
  file XeroAPI/Xero-OpenAPI e952d0bda3628facbf7afc5990ad6a0e7e77bd1e "$x.yaml" "xero/$x.yaml"
done
for p in REST events-v2 scim integration-jira-service mcp; do
  file PagerDuty/api-schema 91a06fb3c64b0ab2b2bd6c485d12b327dfb55c18 "reference/$p/openapiv3.json" "pagerduty/$p.json"
done
file netlify/open-api 650803172c55155ec34dcad94602e058477a4a98 swagger.yml netlify/swagger.yml
file Asana/openapi fc9f8dcf224efa8e06bfc955d91dd95aac7a398d defs/asana_oas.yaml asana/asana_oas.yaml
file Asana/openapi fc9f8dcf224efa8e06bfc955d91dd95aac7a398d defs/app_components_oas.yaml asana/app_components_oas.yaml
file argoproj/argo-workflows f016ad89eb269d282aec06dc491c29f396a38df4 api/openapi-spec/swagger.json argo/swagger.json
file argoproj/argo-workflows f016ad89eb269d282aec06dc491c29f396a38df4 pkg/plugins/executor/swagger.yml argo/executor-swagger.yml
file kubernetes-client/python 024658493d124f046fc0a9827a2a3165cf2aee28 kubernetes/swagger.json.unprocessed kubernetes/swagger.json
file resend/resend-openapi fd6f395f2114e13806025f0c330921c901d62bb1 resend.yaml resend/resend.yaml
file gothinkster/realworld 747190ecf0bb27d461cf1100f6cb3468c6c914ed api/openapi.yml realworld/openapi.yml
# Azure (Swagger 2.0, x-ms-* extensions, relative references to common-types), as vendored
# by Azure/oav's tests: the whole tree, so that ../../../common-types resolves.
tree Azure/oav bf50f770da65ab3c1026a3a6744113c061cb97f4 test/liveValidation/swaggers/specification azure-live
tree Azure/oav bf50f770da65ab3c1026a3a6744113c061cb97f4 test/apiScenario/fixtures/specification azure-scenario
tree Azure/autorest.testserver c04d3fe530c00a8095cfc6288d5f7bf1c7f61f38 swagger autorest
# Odd and small documents from parsers' test suites (relative refs, cycles, invalid input).
tree getkin/kin-openapi f0407d53b0730280266f454b755010e7eeb985da openapi3/testdata odd/kin
tree getkin/kin-openapi f0407d53b0730280266f454b755010e7eeb985da openapi2/testdata odd/kin2
tree APIDevTools/swagger-parser 80ebe6f19bfe1db5800791e049451d192269c87f test/specs odd/apidevtools
tree microsoft/OpenAPI.NET aadccafd9e58cde584bd857abd7b8f864034d1a8 test/Microsoft.OpenApi.Readers.Tests odd/openapi-net
tree swagger-api/swagger-parser f605c3c8b7319989e0ac81d46a4ccb40610a1e5f modules/swagger-parser-v3/src/test/resources odd/swagger-parser-v3
echo "documents in $SPECS: $(find "$SPECS" -name '*.json' -o -name '*.yaml' -o -name '*.yml' | wc -l) files"
