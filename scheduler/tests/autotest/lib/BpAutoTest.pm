# Helpers the bridgepool .t files share on top of NGCP::Rtpengine::AutoTest.
package BpAutoTest;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(pt_re);

# An RTP packet of payload type $pt, marked or not (the transcoder marks its first packet), any
# sequence, timestamp and SSRC (the transcoder's own stream), payload matching $re.
sub pt_re {
	my ($pt, $re) = @_;
	my $c = sprintf('[\\x%02x\\x%02x]', $pt, $pt | 0x80);
	return qr/^\x80$c(..)(....)(....)$re$/s;
}

1;
