package ceremony

import "slices"

// blame decides which parties a failed attempt excludes from the next
// quorum, on what the coordinator can check itself, so that one signer's
// word cannot push honest signers out.
//
// What counts as evidence:
//   - parties the coordinator saw go offline (their ceremony stream closed):
//     they are excluded, whatever anyone reports;
//   - a signer's report about itself (it failed, nobody else named): it is
//     excluded;
//   - signatures that do not verify, and parties silent at the deadline,
//     are handled where they are seen (signReportedLocked, checkRunning).
//
// What does not: the culprits a reporter names. The library's identifiable
// abort names them from protocol messages sealed end to end between the
// signers, which the coordinator cannot read, so it cannot tell an honest
// accusation from a malicious one. An accusation against exactly one other
// party therefore excludes both the accuser and the accused (one of them
// misbehaved; the next quorum separates them), and one against several
// excludes only the accuser. Either way a report removes at most one
// signer besides its author, and the author is excluded with it, so it
// cannot report again for this signature; and failAttemptLocked drops new
// exclusions that would leave fewer than t signers, falling back to
// rotation. So a malicious signer steers at most one honest signer out of
// one signature's later quorums, and only by leaving them itself.
func blame(parties []string, reporter string, culprits, online []string) []string {
	if offline := without(parties, online); len(offline) > 0 {
		return offline
	}
	var accused []string
	for _, p := range culprits {
		if p != reporter && slices.Contains(parties, p) && !slices.Contains(accused, p) {
			accused = append(accused, p)
		}
	}
	if len(accused) == 1 {
		return []string{reporter, accused[0]}
	}
	return []string{reporter}
}
