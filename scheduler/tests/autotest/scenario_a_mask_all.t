#!/usr/bin/perl
# Scenario A (rtpengine 'opus fmtp options, full offer list'): PCMU/PCMA/te/CN offered with
# codec mask=all, transcode=[opus with fmtp, PCMU]: the callee is offered opus (the given fmtp)
# and PCMU, nothing else; an opus-only answer becomes a PCMU answer; PCMU RTP reaches the
# callee as opus.
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

my ($port_b) = offer('A: mask all, transcode opus and PCMU',
	{ codec => { mask => ['all'], transcode => ['opus/48000/2///maxaveragebitrate--40000;stereo--0', 'PCMU'] },
	  replace => ['origin'] }, <<SDP);
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio $pa RTP/AVP 0 8 101 13
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtpmap:13 CN/8000
a=ptime:20
a=sendrecv
----------------------------------
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 96 0
a=rtpmap:96 opus/48000/2
a=fmtp:96 maxaveragebitrate=40000; stereo=0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
SDP

my ($port_a) = answer('A: opus-only answer', {}, <<SDP);
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio $pb RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 maxaveragebitrate=40000;stereo=0
a=ptime:20
a=sendrecv
----------------------------------
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
SDP

snd($sock_a, $port_a, rtp(0, 1000, 3000, 0x1234, "\xff" x 160), '127.0.0.1');
rcv($sock_b, 0, pt_re(96, '.+'));
snd($sock_b, $port_b, rtp(96, 2000, 4000, 0x5678, "\xf8\xff\xfe"), '127.0.0.1');
rcv($sock_a, 0, pt_re(0, '.{160}'));

rtpe_req('delete', 'A: delete', { 'from-tag' => ft() });
done_testing();
