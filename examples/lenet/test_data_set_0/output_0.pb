
BprobabilitiesJ(Yóœ<ÊÌ5?Çõ;Ë þ<	¯=>Œb<Rô´;ÚÏ:E­§<À·6<