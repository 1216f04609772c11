#!/usr/bin/perl
# Scenario C (rtpengine 'multi codec offer/answer w single-codec and tp-event'): PCMU/PCMA/te
# offered with transcode=opus gets opus and telephone-event/48000 added; the answerer picks
# PCMU, an offered codec, so the call is passed through: the answer back lists PCMU and
# te/8000 only (single codec), and RTP is relayed untouched both ways.
use strict;
use warnings;
use NGCP::Rtpengine::AutoTest;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use BpAutoTest;

autotest_init() or die;
my ($sock_a, $sock_b) = new_call(['127.0.0.1', 0], ['127.0.0.1', 0]);
my ($pa, $pb) = ($sock_a->sockport, $sock_b->sockport);

my ($port_b) = offer('C: transcode opus adds opus and te/48000', { codec => { transcode => ['opus'] } }, <<SDP);
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio $pa RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
----------------------------------
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 0 8 96 97 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 telephone-event/48000
a=fmtp:97 0-15
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
SDP

my ($port_a) = answer('C: PCMU answer is passthrough', { flags => ['single codec'] }, <<SDP);
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio $pb RTP/AVP 0 8 96 101 98
a=rtpmap:96 opus/48000/2
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-15
a=sendrecv
----------------------------------
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
SDP

# Passthrough: the packets arrive as sent (sequence, timestamp, SSRC, payload).
my $payload = join('', map { chr($_ % 256) } 0 .. 159);
snd($sock_a, $port_a, rtp(0, 1000, 3000, 0x1234, $payload), '127.0.0.1');
rcv($sock_b, 0, rtpm(0, 1000, 3000, 0x1234, $payload));
snd($sock_b, $port_b, rtp(0, 5000, 7000, 0x5678, $payload), '127.0.0.1');
rcv($sock_a, 0, rtpm(0, 5000, 7000, 0x5678, $payload));

rtpe_req('delete', 'C: delete', { 'from-tag' => ft() });
done_testing();
