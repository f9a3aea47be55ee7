// Package regulatest provides TEST-ONLY stand-ins for Regula's Document
// Reader and Face API web services.
//
// ╔══════════════════════════════════════════════════════════════════════╗
// ║ FOR TESTS ONLY. Import this package from _test.go files and nowhere   ║
// ║ else. The stand-ins read no document and compare no face: they check  ║
// ║ the shape of each request and answer with canned, spec-shaped data.   ║
// ║ TestOnlyTestsImport (imports_test.go) fails the build's tests if any  ║
// ║ non-test package of the module depends on this one.                  ║
// ╚══════════════════════════════════════════════════════════════════════╝
//
// Regula's services are commercial and licensed; they cannot run in CI. The
// project's rules allow fakes of such services inside tests only, shaped
// exactly like their public API. The shapes here follow Regula's public
// OpenAPI specifications:
//
//   - Document Reader: github.com/regulaforensics/DocumentReader-web-openapi,
//     tag v9.2.731 (info.version 8.1.0): index.yml, p-process.yml
//     (ProcessRequest, ProcessParams, ProcessRequestImage, ProcessResponse,
//     TransactionInfo), rt.yml (ContainerList, Result, ResultItem),
//     rt-status.yml, rt-text.yml, rt-images.yml, rt-doc-type-old.yml
//     (OneCandidate), common.yml (ImageData, Scenario, Light, CheckResult,
//     Source), e-text-field-type.yml and e-graphic-field-type.yml.
//   - Face API: github.com/regulaforensics/FaceSDK-web-openapi, tag v8.2.603
//     (info.version 7.2.0): match.yml (MatchRequest, MatchImage,
//     MatchResponse), detect.yml (DetectRequest, DetectResponse),
//     liveness.yml (GET /api/v2/liveness, TransactionInfo) and common.yml
//     (FaceSDKResultCode, ImageSource, ProcessParam, OperationLog).
//
// # What a stand-in validates
//
// Every request is checked against the spec before it is answered: the
// method and path; a JSON body with Content-Type application/json; no
// property the spec does not define, at every level the client fills; every
// required property present (processParam.scenario from the Scenario enum,
// a non-empty List for /api/process; images with data for /api/match; image
// for /api/detect; a UUID transactionId for liveness); enum values
// (scenario, light, resultTypeOutput, ImageSource); and every base64 image
// decoding to a real JPEG or PNG (fully decoded by internal/media). A
// request that fails is answered 400, with an OperationLog body for the Face
// API as its spec says, and the reason is kept for Rejections, so tests can
// prove the stand-in rejects what the real service would.
//
// # What a stand-in answers
//
// Responses are built from the specs' schemas and examples: a ProcessResponse
// whose ContainerList holds Status (33), Text (36), Images (37, with the
// portrait, graphic field 201) and DocumentType (9, OneCandidate) results
// for an ICAO 9303 specimen passport of the fictitious state of Utopia
// (limited to the resultTypeOutput asked for); MatchResponse detections and
// a similarity result; a DetectResponse with one detection; a liveness
// TransactionInfo. The values are fictitious specimen data, never a real
// person's.
//
// # Faults
//
// Inject queues faults, one per later valid request; SetFault applies one to
// every request until cleared: a delay (answered when it ends or the client
// goes away), any status (5xx), 429 with a Retry-After, a malformed JSON
// body, face-not-detected (Face API) or no portrait (Document Reader), a
// document whose overallStatus is 0 (ERROR), and any FaceSDKResultCode.
package regulatest
