// Package awskmstest is test support for code that uses AWS KMS keys: it
// starts local-kms (github.com/nsmithuk/local-kms, MIT), an independent AWS
// KMS emulator written in Go, in process on an httptest server bound to
// 127.0.0.1, with its LevelDB database in the test's temporary directory.
// Clients reach it with the official aws-sdk-go-v2 KMS client, through
// aws-kms:/// URIs whose AWS_ENDPOINT names the server (see URI).
//
// In front of local-kms sits a thin layer, written here and labelled as such,
// that adds what the emulator lacks and the tests need:
//   - RotateKeyOnDemand, which local-kms answers with 501: the front answers
//     it itself, as AWS documents it (new key material behind the same ARN;
//     older ciphertexts stay readable; a key ID or ARN, not an alias), by
//     adding a backing key to the key in local-kms's own database;
//   - fault hooks (DenyAccess, Throttle, Stop) answering every request with
//     AWS's documented awsJson1_1 error bodies (AccessDeniedException,
//     ThrottlingException), or not at all;
//   - ExpireDeletion, which moves a pending deletion's date into the past,
//     as if AWS's waiting period had run out;
//   - VerifySignatures, which checks each request's SigV4 signature against
//     the test credentials, as AWS does (local-kms checks none);
//   - a request count per operation;
//   - a fake STS beside it (package ststest: GetCallerIdentity in STS's
//     query protocol, answering for Account), named by the URIs'
//     AWS_STS_ENDPOINT, since local-kms has none.
//
// It is for tests only. The credentials it hands out are made up; local-kms
// does not check signatures (VerifySignatures makes the front check them).
package awskmstest
